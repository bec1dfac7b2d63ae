"""How far a proposed block's time may be from this node's clock, and what to do when it is
this node's clock that is wrong.

A backup refuses a block whose timestamp is more than max_clock_drift_ms from its clock
(DESIGN: the time a court reads must not rest on one proposer). With one validator minutes
fast and another minutes slow, that alone would stall a 4-validator chain: both would
refuse every honest block. So each node also watches its own clock against the blocks the
chain commits (certified by a quorum, whoever proposed them): the median of (our clock at
commit - block time) over the last SAMPLES blocks is our offset. When that offset itself
exceeds the bound, our clock is the odd one: we then judge a proposal against our clock
corrected by that offset (the elapsed time is still right), say so loudly, and count it.
Peers also announce their clock with their head (every second): the median over all the
nodes we hear from, ourselves included, is the best guess, and it needs no commit (a node
restarted with a wrong clock would otherwise refuse every block and learn nothing). With
fewer than a third of the nodes wrong, the median is an honest node's clock.
A skewed proposer is refused either way (its time is off against every honest clock, and
against the chain's), and an honest-clock node never uses a correction, so a proposer can
never walk the chain's time away from the honest validators' clocks."""

from __future__ import annotations

import logging
import statistics
from collections import deque
from collections.abc import Callable

log = logging.getLogger("chain.clock")

SAMPLES = 9
MIN_SAMPLES = 3
WARN_INTERVAL_MS = 60_000
PEER_READING_TTL_MS = 30_000
MAX_PEERS = 1024


class TimestampRefused(ValueError):
    """A proposal's time is too far from ours (and from the chain's, when ours is off)."""


class ClockWatch:
    def __init__(self, clock_ms: Callable[[], int], max_drift_ms: Callable[[], int]) -> None:
        self._clock_ms = clock_ms
        self._max_drift_ms = max_drift_ms
        self._samples: deque[int] = deque(maxlen=SAMPLES)
        self._peers: dict[bytes, tuple[int, int]] = {}  # peer -> (ours - theirs, when)
        self._warned_ms = -WARN_INTERVAL_MS
        self.corrected_checks = 0

    def committed(self, block_time_ms: int) -> None:
        """A certified block committed: one more sample of our clock against the chain's."""
        self._samples.append(self._clock_ms() - block_time_ms)

    def peer_reading(self, peer: bytes, their_clock_ms: int) -> None:
        """A peer's clock, as it announced it (one-way latency is noise well below the
        bound). Kept per peer, forgotten after PEER_READING_TTL_MS."""
        now = self._clock_ms()
        self._peers[peer] = (now - their_clock_ms, now)
        if len(self._peers) > MAX_PEERS:
            oldest = min(self._peers, key=lambda p: self._peers[p][1])
            del self._peers[oldest]

    def peer_offsets_ms(self) -> dict[bytes, int]:
        now = self._clock_ms()
        return {
            peer: offset
            for peer, (offset, when) in sorted(self._peers.items())
            if now - when <= PEER_READING_TTL_MS
        }

    @property
    def offset_ms(self) -> int | None:
        """Our clock minus the others': the median of the peers' readings with ours (0),
        else of the committed blocks' times; None before there is enough of either."""
        readings = list(self.peer_offsets_ms().values())
        if len(readings) >= 2:
            return int(statistics.median([0, *readings]))
        if len(self._samples) < MIN_SAMPLES:
            return None
        return int(statistics.median(self._samples))

    def own_clock_is_off(self) -> bool:
        offset = self.offset_ms
        return offset is not None and abs(offset) > self._max_drift_ms()

    def check(self, timestamp_ms: int) -> None:
        now = self._clock_ms()
        limit = self._max_drift_ms()
        offset = self.offset_ms
        if offset is not None and abs(offset) > limit:
            # Our clock is the odd one: judge by the chain's time alone (a proposer as far
            # off as we are is refused too).
            drift = abs(timestamp_ms - (now - offset))
            if drift > limit:
                raise TimestampRefused(
                    f"timestamp is {drift} ms away from the chain's time (our clock is "
                    f"{offset:+d} ms off; limit {limit})"
                )
            self.corrected_checks += 1
            if now - self._warned_ms >= WARN_INTERVAL_MS:
                self._warned_ms = now
                log.warning(
                    "this node's clock is %+d ms off the chain's (the blocks its validators "
                    "certify): judging proposals by the chain's time; fix this host's time "
                    "source (NTP)",
                    offset,
                )
            return
        drift = abs(timestamp_ms - now)
        if drift > limit:
            raise TimestampRefused(f"timestamp is {drift} ms away from our clock (limit {limit})")
