"""The pinned peer set changes live (membership changes): added peers connect, removed
peers' links close and their handshakes are refused, and a node that takes a new key
reconnects with its new certificate."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from conftest import P2PKit


async def test_peers_added_and_removed_without_a_restart(kit: P2PKit) -> None:
    a, b, c = kit.identity("a"), kit.identity("b"), kit.identity("c")
    with trio.fail_after(20):
        manager_b = kit.manager(b, [a, b], {})
        manager_c = kit.manager(c, [a, c], {})
        async with kit.running(manager_b), kit.running(manager_c):
            manager_a = kit.manager(a, [a, b], {b.node_id: (kit.HOST, manager_b.listen_port)})
            async with kit.running(manager_a):
                await kit.wait_until(lambda: manager_a.connected_peers() == [b.node_id])
                changed = manager_a.update_peers(
                    {p.node_id: p.cert_pem for p in (a, c)},
                    {c.node_id: (kit.HOST, manager_c.listen_port)},
                )
                assert changed == {
                    "added": [c.node_id.hex()],
                    "removed": [b.node_id.hex()],
                    "moved": [],
                }
                await kit.wait_until(lambda: manager_a.connected_peers() == [c.node_id])
                await kit.wait_until(lambda: manager_b.connected_peers() == [])
                # b keeps trying (it still allows a) but a no longer pins b: refused.
                manager_b.update_peers(
                    {p.node_id: p.cert_pem for p in (a, b)},
                    {a.node_id: (kit.HOST, manager_a.listen_port)},
                )
                await kit.wait_until(lambda: manager_a.counters["handshake_failed"] > 0)
                assert b.node_id not in manager_a.connected_peers()
                assert manager_a.counters["peers_added"] == 1
                assert manager_a.counters["peers_removed"] == 1
                assert manager_a.send_nowait(c.node_id, {"t": "hi"})
                peer, msg = await manager_c.inbox.receive()
                assert (peer, msg) == (a.node_id, {"t": "hi"})


async def test_a_rotated_node_key_reconnects_with_its_new_certificate(kit: P2PKit) -> None:
    a, b, a2 = kit.identity("a"), kit.identity("b"), kit.identity("a-rotated")
    with trio.fail_after(20):
        manager_b = kit.manager(b, [a, b], {})
        async with kit.running(manager_b):
            manager_a = kit.manager(a, [a, b], {b.node_id: (kit.HOST, manager_b.listen_port)})
            async with kit.running(manager_a):
                await kit.wait_until(lambda: manager_b.connected_peers() == [a.node_id])
                # The set changed: b now pins a's new key; a takes it.
                manager_b.update_peers({p.node_id: p.cert_pem for p in (a2, b)}, {})
                manager_a.replace_identity(a2.node_id, a2.cert_pem, a2.key_pem)
                await kit.wait_until(lambda: manager_b.connected_peers() == [a2.node_id])
                assert manager_a.node_id == a2.node_id


async def test_a_rotated_key_under_the_same_name_is_trusted(kit: P2PKit) -> None:
    """Both certificates of a validator that rotated its key carry its name: the pinned set
    holds both for a while, and the new one must still verify, as a server's certificate
    and as a client's (found on a real testnet: OpenSSL picked the old certificate as the
    issuer and refused the new one, "self-signed certificate")."""
    old, new, other = kit.identity("node3"), kit.identity("node3"), kit.identity("node0")
    with trio.fail_after(20):
        rotated = kit.manager(new, [new, other], {})
        async with kit.running(rotated):
            dialer = kit.manager(
                other, [old, new, other], {new.node_id: (kit.HOST, rotated.listen_port)}
            )
            async with kit.running(dialer):
                await kit.wait_until(lambda: dialer.connected_peers() == [new.node_id])
                assert dialer.counters["tls_failed"] == 0
