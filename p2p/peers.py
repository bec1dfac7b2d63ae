"""PeerManager: the listener, one dialer per configured peer, and the table of live links.

At most one link per peer is live. When two links to the same peer exist (both sides
dialled at once, or the peer reconnected), both ends keep the same one:

* a link dialled by the lower node id beats one dialled by the higher node id;
* between two links dialled by the same node, the newer wins (the older is stale: that
  node only dials again once it believes the old link is gone).

Messages are best-effort: a frame queued or in flight when a link breaks can be lost. The
consensus layer retransmits what matters.
"""

from __future__ import annotations

import errno
import logging
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import trio

from p2p.framing import DEFAULT_MAX_FRAME_BYTES, encode_frame
from p2p.handshake import HandshakeFailed, Handshaken, perform_handshake
from p2p.identity import NODE_ID_LEN, certificate_public_key
from p2p.link import RESERVED_KINDS, Link, LinkLimits, PeerTraffic
from p2p.tls import make_client_context, make_server_context

log = logging.getLogger(__name__)

InboxItem = tuple[bytes, dict[str, Any]]

# Every global counter, so that readers of statistics() never meet a missing key.
GLOBAL_COUNTERS = (
    "accept_errors",
    "bad_frame",
    "connect_failed",
    "dial_attempts",
    "dial_failed",
    "duplicate_link_closed",
    "frame_too_large",
    "handshake_busy_refused",
    "handshake_failed",
    "handshake_timeout",
    "hello_mismatch",
    "idle_timeout",
    "internal_error",
    "links_closed",
    "links_established",
    "peer_key_mismatch",
    "peers_added",
    "peers_removed",
    "queue_full_drops",
    "no_link_drops",
    "rejected_after_handshake",
    "send_stall",
    "self_connection",
    "tls_failed",
    "unknown_peer_refused",
)

# errno values that mean "out of file descriptors or buffers": back off and keep accepting.
_ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
_ACCEPT_CAPACITY_SLEEP_S = 0.1
_MAX_BACKOFF_EXPONENT = 30
HANDSHAKE_LOG_INTERVAL_S = 30.0


@dataclass(slots=True)
class _PeerState:
    address: str
    traffic: PeerTraffic = field(default_factory=PeerTraffic)
    link: Link | None = None
    changed: trio.Event = field(default_factory=trio.Event)


class PeerManager:
    """Keeps authenticated TLS links to a fixed set of allowed peers. See docs/P2P.md."""

    def __init__(
        self,
        *,
        node_id: bytes,
        cert_pem: bytes,
        key_pem: bytes,
        listen_host: str,
        listen_port: int,
        chain_id: str,
        allowed: Mapping[bytes, bytes],
        dial: Mapping[bytes, tuple[str, int]],
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        send_queue_frames: int = 1024,
        send_queue_bytes: int = 64 * 1024 * 1024,
        inbox_size: int = 4096,
        handshake_timeout_ms: int = 5000,
        max_concurrent_handshakes: int = 16,
        backoff_initial_ms: int = 100,
        backoff_max_ms: int = 5000,
        ping_interval_ms: int = 2000,
        idle_timeout_ms: int = 10_000,
        send_stall_timeout_ms: int = 30_000,
        write_batch_bytes: int = 256 * 1024,
        cert_path: Path | None = None,
        key_path: Path | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if len(node_id) != NODE_ID_LEN:
            raise ValueError(f"node_id must be {NODE_ID_LEN} bytes")
        if certificate_public_key(cert_pem) != node_id:
            raise ValueError("cert_pem does not carry node_id's key")
        for peer, pem in allowed.items():
            if certificate_public_key(pem) != peer:
                raise ValueError(f"allowed certificate for {peer.hex()[:16]} has another key")
        for peer in dial:
            if peer not in allowed:
                raise ValueError(f"dial target {peer.hex()[:16]} is not in allowed")
        if not chain_id:
            raise ValueError("chain_id must not be empty")
        positive = {
            "inbox_size": inbox_size,
            "handshake_timeout_ms": handshake_timeout_ms,
            "max_concurrent_handshakes": max_concurrent_handshakes,
            "backoff_initial_ms": backoff_initial_ms,
        }
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be >= 1")
        if backoff_max_ms < backoff_initial_ms:
            raise ValueError("backoff_max_ms must be >= backoff_initial_ms")
        if not 0 <= listen_port <= 65535:
            raise ValueError("listen_port must be in 0..65535")

        self.node_id = node_id
        self.chain_id = chain_id
        self.listen_host = listen_host
        self.listen_port = listen_port  # replaced by the bound port once run() has started
        self._limits = LinkLimits(
            max_frame_bytes=max_frame_bytes,
            send_queue_frames=send_queue_frames,
            send_queue_bytes=send_queue_bytes,
            write_batch_bytes=write_batch_bytes,
            ping_interval_ms=ping_interval_ms,
            idle_timeout_ms=idle_timeout_ms,
            send_stall_timeout_ms=send_stall_timeout_ms,
        )
        self._handshake_timeout_s = handshake_timeout_ms / 1000
        self._max_concurrent_handshakes = max_concurrent_handshakes
        self._backoff_initial_s = backoff_initial_ms / 1000
        self._backoff_max_s = backoff_max_ms / 1000
        self._rng = rng if rng is not None else random.Random()
        self._cert_pem, self._key_pem = cert_pem, key_pem
        self._cert_path, self._key_path = cert_path, key_path
        self._make_contexts(allowed)
        self.allowed_certificates: Mapping[bytes, bytes] = MappingProxyType(dict(allowed))
        self._allowed = frozenset(peer for peer in allowed if peer != node_id)
        self._dial = {peer: address for peer, address in dial.items() if peer != node_id}
        self._peers: dict[bytes, _PeerState] = {
            peer: _PeerState(
                address=_format_address(*self._dial[peer]) if peer in self._dial else ""
            )
            for peer in sorted(self._allowed)
        }
        self._nursery: trio.Nursery | None = None
        self._handshake_logged: dict[bytes, float] = {}
        self._dialers: dict[bytes, trio.CancelScope] = {}
        self.counters: Counter[str] = Counter({name: 0 for name in GLOBAL_COUNTERS})
        self._inbound_handshakes = 0
        self._started = False
        self._inbox_send, self.inbox = trio.open_memory_channel[InboxItem](inbox_size)

    def _make_contexts(self, allowed: Mapping[bytes, bytes]) -> None:
        # Our own certificate may be in the allowed set (genesis lists every validator);
        # a link to ourselves is refused after the handshake.
        pinned = [allowed[peer] for peer in sorted(allowed)] or [self._cert_pem]
        self._server_context = make_server_context(
            self._cert_pem,
            self._key_pem,
            pinned,
            cert_path=self._cert_path,
            key_path=self._key_path,
        )
        self._client_context = make_client_context(
            self._cert_pem,
            self._key_pem,
            pinned,
            cert_path=self._cert_path,
            key_path=self._key_path,
        )

    # --- following a changing peer set ---------------------------------------------------

    def update_peers(
        self, allowed: Mapping[bytes, bytes], dial: Mapping[bytes, tuple[str, int]]
    ) -> dict[str, list[str]]:
        """Pin a new set of peers without a restart: new handshakes use the new pins, links
        to removed peers close, dialers start for added peers and restart for moved ones.
        Returns what changed (hex ids) for the log."""
        for peer, pem in allowed.items():
            if certificate_public_key(pem) != peer:
                raise ValueError(f"allowed certificate for {peer.hex()[:16]} has another key")
        for peer in dial:
            if peer not in allowed:
                raise ValueError(f"dial target {peer.hex()[:16]} is not in allowed")
        new_allowed = frozenset(peer for peer in allowed if peer != self.node_id)
        new_dial = {peer: a for peer, a in dial.items() if peer != self.node_id}
        removed = sorted(self._allowed - new_allowed)
        added = sorted(new_allowed - self._allowed)
        moved = sorted(
            p for p in new_dial if p in self._allowed and self._dial.get(p) != new_dial[p]
        )
        self._make_contexts(allowed)
        self.allowed_certificates = MappingProxyType(dict(allowed))
        self._allowed = new_allowed
        for peer in removed:
            self._stop_dialer(peer)
            state = self._peers.pop(peer)
            if state.link is not None:
                state.link.close("peer_removed")
            self.counters["peers_removed"] += 1
        for peer in added:
            self._peers[peer] = _PeerState(
                address=_format_address(*new_dial[peer]) if peer in new_dial else ""
            )
            self.counters["peers_added"] += 1
        for peer in moved:
            self._stop_dialer(peer)
            self._peers[peer].address = _format_address(*new_dial[peer])
        self._dial = new_dial
        for peer in sorted(set(added) | set(moved)):
            if peer in new_dial:
                self._start_dialer(peer)
        return {
            "added": [p.hex() for p in added],
            "removed": [p.hex() for p in removed],
            "moved": [p.hex() for p in moved],
        }

    def replace_identity(self, node_id: bytes, cert_pem: bytes, key_pem: bytes) -> None:
        """Take a new node key (a validator's key rotation took effect): every link closes
        and comes back authenticated with the new certificate."""
        if len(node_id) != NODE_ID_LEN or certificate_public_key(cert_pem) != node_id:
            raise ValueError("cert_pem does not carry node_id's key")
        self.node_id = node_id
        self._cert_pem, self._key_pem = cert_pem, key_pem
        self._cert_path = self._key_path = None
        self._make_contexts(self.allowed_certificates)
        # Our new key may be pinned (the set lists it): never dial or keep a state for it.
        self._allowed = self._allowed - {node_id}
        self._stop_dialer(node_id)
        self._dial.pop(node_id, None)
        own = self._peers.pop(node_id, None)
        if own is not None and own.link is not None:
            own.link.close("self")
        for state in self._peers.values():
            if state.link is not None:
                state.link.close("identity_replaced")

    def _start_dialer(self, peer: bytes) -> None:
        if self._nursery is None:
            return  # not running yet: run() starts every dialer
        scope = trio.CancelScope()
        self._dialers[peer] = scope
        address = self._dial[peer]

        async def dial_until_cancelled() -> None:
            with scope:
                await self._dial_loop(peer, address)

        self._nursery.start_soon(dial_until_cancelled)

    def _stop_dialer(self, peer: bytes) -> None:
        scope = self._dialers.pop(peer, None)
        if scope is not None:
            scope.cancel()

    # --- public sending API --------------------------------------------------------------

    def _encode(self, msg: dict[str, Any]) -> bytes:
        if not isinstance(msg, dict) or not isinstance(msg.get("t"), str):
            raise ValueError("a message is a dict with a str kind under 't'")
        if msg["t"] in RESERVED_KINDS:
            raise ValueError(f"message kind {msg['t']!r} is reserved for the link layer")
        # Raises FrameError when the peer would refuse the frame as too large.
        return encode_frame(msg, max_frame_bytes=self._limits.max_frame_bytes)

    def _enqueue(self, peer: bytes, frame: bytes) -> bool:
        state = self._peers.get(peer)
        if state is None:
            raise KeyError(f"{peer.hex()[:16]} is not an allowed peer")
        link = state.link
        if link is None or link.closed:
            state.traffic.no_link_drops += 1
            self.counters["no_link_drops"] += 1
            return False
        if not link.enqueue(frame):
            state.traffic.queue_full_drops += 1
            self.counters["queue_full_drops"] += 1
            return False
        return True

    def send_nowait(self, peer: bytes, msg: dict[str, Any]) -> bool:
        """Queue msg for peer. False (and counted) when there is no link or its queue is full.

        Raises ValueError for a malformed msg, FrameError when it exceeds the frame limit,
        KeyError when peer is not in the allowed set.
        """
        return self._enqueue(peer, self._encode(msg))

    async def send(self, peer: bytes, msg: dict[str, Any]) -> bool:
        """Queue msg for peer, waiting while its queue is full. False when there is no link
        or the link closes while waiting (the message is then dropped and counted)."""
        frame = self._encode(msg)
        state = self._peers.get(peer)
        if state is None:
            raise KeyError(f"{peer.hex()[:16]} is not an allowed peer")
        link = state.link
        if link is None:
            await trio.lowlevel.checkpoint()
        elif await link.enqueue_waiting(frame):
            return True
        state.traffic.no_link_drops += 1
        self.counters["no_link_drops"] += 1
        return False

    def broadcast_nowait(self, msg: dict[str, Any], *, exclude: bytes | None = None) -> int:
        """Queue msg for every connected peer except `exclude`; returns how many took it."""
        frame = self._encode(msg)  # encoded once, shared by every queue
        queued = 0
        for peer, state in self._peers.items():
            if peer != exclude and state.link is not None:
                queued += self._enqueue(peer, frame)
        return queued

    def connected_peers(self) -> list[bytes]:
        return [peer for peer, state in self._peers.items() if state.link is not None]

    def statistics(self) -> dict[str, Any]:
        """A snapshot: global counters and one entry per allowed peer (keys in hex)."""
        now = _now()
        peers: dict[str, dict[str, Any]] = {}
        for peer, state in self._peers.items():
            link = state.link
            traffic = state.traffic
            peers[peer.hex()] = {
                "connected": link is not None,
                "address": link.address if link is not None else state.address,
                "direction": link.direction if link is not None else "",
                "uptime_s": round(now - link.established_at, 3) if link is not None else 0.0,
                "queue_depth": link.queue_depth if link is not None else 0,
                "queued_bytes": link.queued_bytes if link is not None else 0,
                "frames_in": traffic.frames_in,
                "bytes_in": traffic.bytes_in,
                "frames_out": traffic.frames_out,
                "bytes_out": traffic.bytes_out,
                "socket_writes": traffic.socket_writes,
                "pings_out": traffic.pings_out,
                "queue_full_drops": traffic.queue_full_drops,
                "no_link_drops": traffic.no_link_drops,
                "unsent_on_close": traffic.unsent_on_close,
                "links_established": traffic.links_established,
                "last_close_reason": traffic.last_close_reason,
            }
        return {
            "node_id": self.node_id.hex(),
            "listen_port": self.listen_port,
            "connected": len(self.connected_peers()),
            "inbound_handshakes": self._inbound_handshakes,
            "inbox_depth": self._inbox_send.statistics().current_buffer_used,
            "counters": dict(sorted(self.counters.items())),
            "peers": peers,
        }

    # --- running ---------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen and keep links until cancelled. task_status gets the bound port.

        Runs once per PeerManager. When it returns (cancelled), every socket is closed and
        the inbox ends (receivers see trio.EndOfChannel once it is drained).
        """
        if self._started:
            raise RuntimeError("a PeerManager runs once; make a new one to restart")
        self._started = True
        try:
            listeners = await trio.open_tcp_listeners(self.listen_port, host=self.listen_host)
            try:
                self.listen_port = listeners[0].socket.getsockname()[1]
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    for listener in listeners:
                        nursery.start_soon(self._accept_loop, listener, nursery)
                    for peer in sorted(self._dial):
                        self._start_dialer(peer)
                    log.info(
                        "p2p %s listening on %s:%d",
                        self.node_id.hex()[:16],
                        self.listen_host,
                        self.listen_port,
                    )
                    task_status.started(self.listen_port)
            finally:
                for listener in listeners:
                    await trio.aclose_forcefully(listener)
        finally:
            self._inbox_send.close()

    async def _accept_loop(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        # Runs until cancelled; each pass blocks in accept().
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno not in _ACCEPT_CAPACITY_ERRNOS:
                    raise
                self.counters["accept_errors"] += 1
                log.warning("accept failed (%s); pausing", errno.errorcode.get(exc.errno or 0))
                await trio.sleep(_ACCEPT_CAPACITY_SLEEP_S)
                continue
            if self._inbound_handshakes >= self._max_concurrent_handshakes:
                # Refuse rather than queue: queued sockets would be unbounded, and a flood
                # of silent connections must not hold more than the cap.
                self.counters["handshake_busy_refused"] += 1
                await trio.aclose_forcefully(stream)
                continue
            self._inbound_handshakes += 1
            nursery.start_soon(self._serve_inbound, stream)

    async def _serve_inbound(self, tcp: trio.SocketStream) -> None:
        address = _stream_address(tcp)
        stream = trio.SSLStream(tcp, self._server_context, server_side=True)
        try:
            try:
                deadline = trio.current_time() + self._handshake_timeout_s
                done = await self._handshake(
                    stream, server_side=True, expected_peer=None, deadline=deadline
                )
            finally:
                self._inbound_handshakes -= 1
            if done is None or done.peer not in self._peers:
                return  # failed, or the peer was removed while it shook hands
            link = self._new_link(
                done, stream, dialer=done.peer, direction="inbound", address=address
            )
            await self._run_link(link)
        finally:
            await trio.aclose_forcefully(stream)

    async def _handshake(
        self,
        stream: trio.SSLStream[Any],
        *,
        server_side: bool,
        expected_peer: bytes | None,
        deadline: float,
    ) -> Handshaken | None:
        """perform_handshake under the deadline; None (and counted) on any failure."""
        reason = ""
        detail = ""
        done: Handshaken | None = None
        with trio.move_on_at(deadline) as scope:
            try:
                done = await perform_handshake(
                    stream,
                    server_side=server_side,
                    own_node_id=self.node_id,
                    chain_id=self.chain_id,
                    expected_peer=expected_peer,
                    allowed=self._allowed,
                    max_frame_bytes=self._limits.max_frame_bytes,
                )
            except HandshakeFailed as exc:
                reason, detail = exc.reason, exc.detail
            except Exception as exc:
                # A bug on this path must not let a remote peer stop the manager: count
                # it, log it loudly, drop this connection only.
                log.exception("internal error during a handshake")
                reason, detail = "internal_error", repr(exc)
        if scope.cancelled_caught:
            reason, detail = "handshake_timeout", f"{self._handshake_timeout_s}s"
        if done is not None and not reason:
            return done
        self.counters["handshake_failed"] += 1
        if reason == "closed_after_handshake":
            self.counters["rejected_after_handshake"] += 1
        elif reason in self.counters:
            self.counters[reason] += 1
        # Outbound failures to a pinned peer are worth an operator's eye (a rotated key not yet
        # followed, a wrong address): at most one line per peer per HANDSHAKE_LOG_INTERVAL_S.
        now = _now()
        peer_key = expected_peer or b""
        if expected_peer is not None and now - self._handshake_logged.get(peer_key, -1e9) >= (
            HANDSHAKE_LOG_INTERVAL_S
        ):
            self._handshake_logged[peer_key] = now
            log.info("dial %s failed: %s %s", expected_peer.hex()[:16], reason, detail)
        else:
            log.debug(
                "handshake (%s) failed: %s %s",
                "inbound" if server_side else "outbound",
                reason,
                detail,
            )
        return None

    def _new_link(
        self,
        done: Handshaken,
        stream: trio.SSLStream[Any],
        *,
        dialer: bytes,
        direction: str,
        address: str,
    ) -> Link:
        return Link(
            peer=done.peer,
            dialer=dialer,
            direction=direction,
            address=address,
            stream=stream,
            decoder=done.decoder,
            early_frames=done.early_frames,
            limits=self._limits,
            inbox=self._inbox_send,
            traffic=self._peers[done.peer].traffic,
            counters=self.counters,
        )

    def _set_link(self, state: _PeerState, link: Link | None) -> None:
        state.link = link
        state.changed.set()
        state.changed = trio.Event()

    async def _run_link(self, link: Link) -> float:
        """Install link (unless a better one exists), run it; returns how long it lived (s)."""
        state = self._peers[link.peer]
        existing = state.link
        if existing is not None:
            self.counters["duplicate_link_closed"] += 1
            if not keep_new_link(
                own_id=self.node_id,
                peer=link.peer,
                existing_dialer=existing.dialer,
                new_dialer=link.dialer,
            ):
                return 0.0
            link.take_queue_from(existing)
            existing.close("replaced_by_duplicate")
        self._set_link(state, link)
        state.traffic.links_established += 1
        self.counters["links_established"] += 1
        log.info("link to %s up (%s, %s)", link.peer.hex()[:16], link.direction, link.address)
        try:
            reason = await link.run()
        finally:
            if state.link is link:
                self._set_link(state, None)
            state.traffic.last_close_reason = link.close_reason or "cancelled"
            self.counters["links_closed"] += 1
        log.info("link to %s down: %s", link.peer.hex()[:16], reason)
        return trio.current_time() - link.established_at

    async def _dial_loop(self, peer: bytes, address: tuple[str, int]) -> None:
        state = self._peers[peer]
        failures = 0
        # Runs until cancelled; every pass waits for the link to drop and then sleeps a
        # jittered backoff, so it never spins.
        while True:
            while state.link is not None:
                await state.changed.wait()
            lived_s = await self._dial_once(peer, address)
            if lived_s is not None and lived_s >= self._backoff_max_s:
                failures = 0  # it was a healthy link: reconnect promptly
            else:
                failures = min(failures + 1, _MAX_BACKOFF_EXPONENT)
            await trio.sleep(
                backoff_delay_s(
                    failures,
                    initial_s=self._backoff_initial_s,
                    max_s=self._backoff_max_s,
                    rng=self._rng,
                )
            )

    async def _dial_once(self, peer: bytes, address: tuple[str, int]) -> float | None:
        """One connection attempt; returns the link's lifetime, or None if it never came up."""
        host, port = address
        self.counters["dial_attempts"] += 1
        # One deadline covers the TCP connect, the TLS handshake and the hello exchange.
        deadline = trio.current_time() + self._handshake_timeout_s
        tcp: trio.SocketStream | None = None
        with trio.move_on_at(deadline):
            try:
                tcp = await trio.open_tcp_stream(host, port)
            except OSError as exc:
                log.debug("dial %s at %s:%d: %s", peer.hex()[:16], host, port, exc)
        if tcp is None:
            self.counters["connect_failed"] += 1
            self.counters["dial_failed"] += 1
            return None
        stream = trio.SSLStream(tcp, self._client_context, server_hostname=None)
        try:
            done = await self._handshake(
                stream, server_side=False, expected_peer=peer, deadline=deadline
            )
            if done is None or done.peer not in self._peers:
                self.counters["dial_failed"] += 1
                return None
            link = self._new_link(
                done,
                stream,
                dialer=self.node_id,
                direction="outbound",
                address=_format_address(host, port),
            )
            return await self._run_link(link)
        finally:
            await trio.aclose_forcefully(stream)


def backoff_delay_s(failures: int, *, initial_s: float, max_s: float, rng: random.Random) -> float:
    """Seconds to wait before the next dial: "full jitter" (AWS architecture blog),
    uniform in [0, min(max_s, initial_s * 2**failures)], so that nodes restarted together
    do not dial in lockstep."""
    if failures < 0:
        raise ValueError("failures must be >= 0")
    ceiling_s = min(max_s, initial_s * 2 ** min(failures, _MAX_BACKOFF_EXPONENT))
    return rng.uniform(0, ceiling_s)


def keep_new_link(*, own_id: bytes, peer: bytes, existing_dialer: bytes, new_dialer: bytes) -> bool:
    """Whether a new link to peer replaces the existing one. Both ends decide alike.

    Links dialled by different nodes: the one dialled by the lower node id is kept (both
    ends compute the same min). Dialled by the same node: the newer is kept, since a node
    dials again only after it gave up on its previous link.
    """
    if existing_dialer == new_dialer:
        return True
    return new_dialer == min(own_id, peer)


def _now() -> float:
    try:
        return trio.current_time()
    except RuntimeError:  # called from outside trio.run (e.g. after shutdown)
        return 0.0


def _format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _stream_address(stream: trio.SocketStream) -> str:
    try:
        name = stream.socket.getpeername()
    except OSError:
        return "?"
    return _format_address(str(name[0]), int(name[1]))
