"""A validator gone bad, in the test process: it holds a real validator's key and TLS
identity (taken from a testnet node's home), speaks the real p2p protocol through
p2p.PeerManager, and sends whatever consensus frames a test builds."""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from consensus import PrePrepare, encode_message, vote_signing_bytes
from node.ledger import crypto, encoding
from node.ledger.block import BlockHeader
from node.ledger.merkle import merkle_root
from node.ledger.tx import TX_VERSION
from p2p.identity import private_key_pem
from p2p.peers import PeerManager


class HostileValidator:
    def __init__(
        self,
        home: Path,
        manager: PeerManager,
        key: crypto.SigningKey,
        index: int,
        chain_id: str,
        validators: list[bytes],
    ) -> None:
        self.home = home
        self.manager = manager
        self.key = key
        self.index = index
        self.chain_id = chain_id
        self.validators = validators

    @property
    def others(self) -> list[bytes]:
        return [v for v in self.validators if v != self.key.public_key]

    def send_to_all(self, raw: bytes) -> int:
        sent = 0
        for peer in self.others:
            try:
                sent += self.manager.send_nowait(peer, {"t": "c", "m": raw})
            except (KeyError, ValueError):
                pass
        return sent

    def send_frame(self, frame: dict[str, object]) -> int:
        """Any frame kind ("c", "txs", "breq", "blks", "head", or junk) to every other node."""
        sent = 0
        for peer in self.others:
            try:
                sent += self.manager.send_nowait(peer, frame)
            except (KeyError, ValueError):
                pass
        return sent

    def pre_prepare(self, view: int, height: int, payload: bytes, digest: bytes) -> bytes:
        signature = self.key.sign(
            vote_signing_bytes(self.chain_id, "pre-prepare", view, height, digest)
        )
        return encode_message(
            PrePrepare(view, height, digest, payload, None, self.index, signature)
        )


def junk_block(
    chain_id: str, height: int, tx_count: int, *, view: int, proposer: int
) -> tuple[bytes, bytes]:
    """(payload, block hash) of a block full of structurally valid transactions that carry
    signatures over something else: as costly to decode and to verify as a real block (a
    well-formed signature fails only at the end of the check), and worthless."""
    signer = crypto.SigningKey.generate()
    sender = signer.public_key
    wrong = signer.sign(b"not this transaction")
    raws = []
    for nonce in range(1, tx_count + 1):
        body = encoding.pack(
            {
                "v": TX_VERSION,
                "chain_id": chain_id,
                "sender": sender,
                "nonce": nonce,
                "type": "notary.anchor",
                "args": {"digest": nonce.to_bytes(32, "big")},
            }
        )
        raws.append(encoding.pack([body, wrong]))
    header = BlockHeader(
        version=1,
        chain_id=chain_id,
        height=height,
        prev_hash=bytes(32),
        view=view,
        proposer=proposer,
        timestamp_ms=1,
        tx_root=merkle_root(raws),
        tx_count=len(raws),
        state_root=bytes(32),
        results_root=bytes(32),
    )
    payload = encoding.pack([header.to_obj(), raws])
    return payload, header.hash()


@asynccontextmanager
async def hostile_validator(
    home: Path, *, read: bool = True, inbox_size: int = 4096
) -> AsyncIterator[HostileValidator]:
    """Run a PeerManager with the identity of the (stopped) node in `home`, connected to
    every other validator of its genesis, until the block exits. read=False: it never reads
    what the others send (their send queues to it fill up)."""
    key = crypto.read_key_file(home / "node_key")
    cert = (home / "node_cert.pem").read_bytes()
    genesis = tomllib.loads((home / "genesis.toml").read_text())
    config = tomllib.loads((home / "config.toml").read_text())
    validators = genesis["validators"]
    allowed = {bytes.fromhex(v["public_key"]): v["certificate"].encode() for v in validators}
    dial = {}
    for v in validators:
        host, _, port = v["address"].rpartition(":")
        dial[bytes.fromhex(v["public_key"])] = (host, int(port))
    listen_host, _, listen_port = config["p2p"]["listen"].rpartition(":")
    manager = PeerManager(
        node_id=key.public_key,
        cert_pem=cert,
        key_pem=private_key_pem(key.private_key),
        listen_host=listen_host,
        listen_port=int(listen_port),
        chain_id=genesis["chain_id"],
        allowed=allowed,
        dial=dial,
        send_queue_bytes=256 * 1024 * 1024,
        inbox_size=inbox_size,
        idle_timeout_ms=3_600_000 if not read else 10_000,
    )
    keys = [bytes.fromhex(v["public_key"]) for v in validators]
    hostile = HostileValidator(
        home, manager, key, keys.index(key.public_key), genesis["chain_id"], keys
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(manager.run)

        async def drain() -> None:
            async for _ in manager.inbox:
                pass

        if read:
            nursery.start_soon(drain)
        yield hostile
        nursery.cancel_scope.cancel()
