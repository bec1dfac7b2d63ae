"""Where a client's transactions enter: admission by the chain, then gossip to the peers and
a wake-up for the proposer, for the ones admitted."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from node.daemon.chain import Chain, SubmitOutcome


class TxIntake:
    def __init__(
        self,
        chain: Chain,
        *,
        gossip: Callable[[Sequence[bytes]], None] | None,
        wake_proposer: Callable[[], None],
    ) -> None:
        self._chain = chain
        self._gossip = gossip
        self._wake_proposer = wake_proposer

    async def submit(self, raws: Sequence[bytes]) -> list[SubmitOutcome]:
        outcomes = await self._chain.submit_raw(raws)
        accepted = [raw for raw, o in zip(raws, outcomes, strict=True) if o.error is None]
        if accepted:
            if self._gossip is not None:
                self._gossip(accepted)
            self._wake_proposer()
        return outcomes
