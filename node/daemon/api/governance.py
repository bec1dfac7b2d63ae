"""JSON-RPC methods for governance and epochs: gov_list, gov_get, epochs_list (docs/RPC.md).

Read from committed state: proposals (gov/prop/*), the epoch history (gov/epochs/*) and
the change scheduled next (gov/next)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from node.daemon.api.errors import not_found
from node.daemon.chain import Chain
from node.ledger import governance
from node.ledger.governance import Epoch
from node.ledger.tx import jsonable
from node.rpc.params import Params

Handler = Callable[[Params, Any], Awaitable[object]]
MAX_LIST = 1000


def epoch_json(epoch: Epoch) -> dict[str, Any]:
    return {
        "epoch": epoch.number,
        "start_height": epoch.start_height,
        "proposal": epoch.proposal,
        "set_hash": epoch.set_hash.hex(),
        "validators": [
            {
                "index": i,
                "name": v["name"],
                "public_key": v["public_key"].hex(),
                "address": v["address"],
            }
            for i, v in enumerate(epoch.validators)
        ],
        "params": dict(epoch.params),
    }


def proposal_json(proposal: dict[str, Any], names: dict[bytes, str]) -> dict[str, Any]:
    out = jsonable({k: v for k, v in proposal.items() if k not in ("approve", "reject")})
    out["proposer_name"] = names.get(proposal["proposer"], "")
    out["approve"] = [{"account": a.hex(), "name": names.get(a, "")} for a in proposal["approve"]]
    out["reject"] = [{"account": a.hex(), "name": names.get(a, "")} for a in proposal["reject"]]
    action = dict(out["action"])
    action.pop("certificate", None)  # long; gov_get with "full" returns it
    out["action_summary"] = action
    return dict(out)


class GovernanceApi:
    def __init__(self, chain: Chain) -> None:
        self.chain = chain

    def methods(self) -> dict[str, tuple[Handler, tuple[str, ...]]]:
        return {
            "gov_list": (self.gov_list, ("status", "limit")),
            "gov_get": (self.gov_get, ("proposal",)),
            "epochs_list": (self.epochs_list, ()),
            "validators_list": (self.validators_list, ()),
        }

    def _names(self) -> dict[bytes, str]:
        return {a.public_key: a.name for a in self.chain.genesis.accounts}

    async def gov_list(self, p: Params, ctx: Any) -> object:
        status = p.str("status", default=None, max_length=32)
        limit = p.int("limit", default=100, min=1, max=MAX_LIST)
        state = self.chain.store.state_reader()
        seq = state.get(governance.SEQ)
        last = 0 if seq is None else seq["next"] - 1
        names = self._names()
        out = []
        for proposal_id in range(last, max(0, last - 10 * MAX_LIST), -1):
            proposal = state.get(governance.prop_key(proposal_id))
            if proposal is None or (status is not None and proposal["status"] != status):
                continue
            out.append(proposal_json(proposal, names))
            if len(out) >= limit:
                break
        return out

    async def gov_get(self, p: Params, ctx: Any) -> object:
        proposal_id = p.int("proposal", min=1)
        proposal = self.chain.store.state_reader().get(governance.prop_key(proposal_id))
        if proposal is None:
            raise not_found(f"proposal {proposal_id}")
        return proposal_json(proposal, self._names())

    async def epochs_list(self, p: Params, ctx: Any) -> object:
        store = self.chain.store
        out: dict[str, Any] = {
            "current": epoch_json(self.chain.epoch_for(store.head.height + 1)),
            "history": [epoch_json(e) for e in store.epochs()],
            "scheduled": None,
        }
        scheduled = store.state_reader().get(governance.NEXT)
        if scheduled is not None:
            out["scheduled"] = epoch_json(Epoch.from_state(scheduled))
        return out

    async def validators_list(self, p: Params, ctx: Any) -> object:
        """The set that signs the next block (it follows governance, not genesis)."""
        return epoch_json(self.chain.epoch_for(self.chain.store.head.height + 1))["validators"]
