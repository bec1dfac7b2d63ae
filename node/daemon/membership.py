"""Follows the validator set that governance keeps in state (node/ledger/governance.py):

- p2p: the pins and dial targets are the validators of the current epoch and of the one
  scheduled next, the candidates of passed additions (they connect as full nodes first),
  and the configured full nodes; updated live after every block that changed governance
  state, so a removed validator's links close and an added one's open, without a restart;
- a candidate: when this node's key is the candidate of an addition that passed, and the
  node is caught up, it reports ready by itself (validator.join, signed by its node key,
  naming its head), which lets the change be scheduled.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import trio

from node.daemon.chain import Chain, SubmitOutcome
from node.daemon.config import NodeConfig
from node.daemon.reactors.links import PeerSet, peer_set
from node.daemon.store import Committed
from node.ledger import crypto, governance
from node.ledger.accounts import account_for_key
from node.ledger.crypto import SigningKey
from node.ledger.governance import Epoch
from node.ledger.tx import make_tx
from p2p.identity import private_key_pem
from p2p.peers import PeerManager

log = logging.getLogger("chain.membership")

Submit = Callable[[Sequence[bytes]], Awaitable[list[SubmitOutcome]]]
Heads = Callable[[], int]  # the highest head any peer announced
JOIN_RETRY_BLOCKS = 8  # report ready again if the proposal still waits after this many blocks
CAUGHT_UP_LAG = 2  # within this many blocks of the best head we know of


class Membership:
    def __init__(
        self,
        config: NodeConfig,
        chain: Chain,
        key: SigningKey,
        *,
        peers: PeerManager | None = None,
        best_peer_head: Heads | None = None,
        submit: Submit | None = None,
    ) -> None:
        self._config = config
        self._chain = chain
        self.key = key  # replaced when this node's validator key rotates
        self._peers = peers
        self._best_peer_head = best_peer_head
        self._submit = submit
        self._wake = trio.Event()
        self._joined: dict[int, int] = {}  # proposal -> height we last reported ready at

    def attach(self, peers: PeerManager, best_peer_head: Heads, submit: Submit) -> None:
        self._peers, self._best_peer_head, self._submit = peers, best_peer_head, submit

    # --- this validator's key rotation ------------------------------------------------------

    def next_key_paths(self) -> tuple[Path, Path]:
        """Where an operator puts the node key a governance rotation will switch to
        (`chain gov new-node-key` writes them)."""
        key = self._config.path(self._config.node.key_file)
        cert = self._config.path(self._config.node.cert_file)
        return key.with_name(key.name + ".next"), cert.with_name(cert.stem + ".next" + cert.suffix)

    def key_for_epoch(self, epoch: Epoch) -> SigningKey:
        """The node key to sign with in `epoch`: the current one, or - when the epoch lists
        this node's next key instead - the next one, which then becomes the current one
        (files renamed, p2p identity replaced: links come back with the new certificate)."""
        if self.key.public_key in epoch.keys:
            return self.key
        next_key_path, next_cert_path = self.next_key_paths()
        if not next_key_path.exists():
            return self.key
        next_key = crypto.read_key_file(next_key_path)
        if next_key.public_key not in epoch.keys:
            return self.key
        key_path = self._config.path(self._config.node.key_file)
        cert_path = self._config.path(self._config.node.cert_file)
        suffix = f".retired-epoch-{epoch.number}"
        key_path.rename(key_path.with_name(key_path.name + suffix))
        cert_path.rename(cert_path.with_name(cert_path.name + suffix))
        next_key_path.rename(key_path)
        next_cert_path.rename(cert_path)
        self.key = next_key
        if self._peers is not None:
            self._peers.replace_identity(
                next_key.public_key, cert_path.read_bytes(), private_key_pem(next_key.private_key)
            )
        log.warning(
            "epoch %d signs with this node's next key %s: switched",
            epoch.number,
            next_key.public_key.hex()[:16],
        )
        return next_key

    # --- who to connect to ---------------------------------------------------------------

    def wanted_peers(self) -> PeerSet:
        state = self._chain.store.state_reader()
        current = self._chain.epoch_for(self._chain.store.head.height + 1)
        validators = {v["public_key"]: v for v in current.validators}
        scheduled = state.get(governance.NEXT)
        if scheduled is not None:
            for v in scheduled["set"]:
                validators.setdefault(v["public_key"], v)
        return peer_set(self._config, list(validators.values()), self._candidates(state))

    def _candidates(self, state: Any) -> list[dict[str, Any]]:
        out = []
        open_ids = state.get(governance.OPEN)
        for proposal_id in open_ids["ids"] if open_ids else []:
            proposal = state.get(governance.prop_key(proposal_id))
            action = proposal["action"] if proposal else None
            if (
                action
                and action["type"] == "add-validator"
                and proposal["status"]
                in (governance.WAITING, governance.QUEUED, governance.SCHEDULED)
            ):
                out.append(
                    {"public_key": action["public_key"], "certificate": action["certificate"]}
                )
        return out

    def on_commit(self, committed: Committed) -> None:
        """After every block: anything governance wrote may change whom we connect to."""
        changed = any(
            key.startswith(b"gov/") and key != governance.RECENT for key in committed.outcome.writes
        )
        epoch_began = any(k.startswith(governance.EPOCHS) for k in committed.outcome.writes)
        if changed or epoch_began:
            self.refresh_peers()
        self._wake.set()

    def refresh_peers(self) -> None:
        if self._peers is None:
            return
        allowed, dial = self.wanted_peers()
        changed = self._peers.update_peers(allowed, dial)
        if any(changed.values()):
            log.info(
                "peer set follows governance: +%d -%d moved %d",
                len(changed["added"]),
                len(changed["removed"]),
                len(changed["moved"]),
            )

    # --- a candidate reports ready ---------------------------------------------------------

    def waiting_for_us(self) -> list[int]:
        state = self._chain.store.state_reader()
        ids = []
        open_ids = state.get(governance.OPEN)
        for proposal_id in open_ids["ids"] if open_ids else []:
            proposal = state.get(governance.prop_key(proposal_id))
            if (
                proposal is not None
                and proposal["status"] == governance.WAITING
                and proposal["action"]["public_key"] == self.key.public_key
            ):
                ids.append(proposal_id)
        return ids

    def caught_up(self) -> bool:
        head = self._chain.store.head.height
        best = self._best_peer_head() if self._best_peer_head is not None else head
        return best <= head + CAUGHT_UP_LAG

    def join_transactions(self) -> list[bytes]:
        """validator.join for each addition that waits for this node, when it is caught up
        (at most once per JOIN_RETRY_BLOCKS per proposal)."""
        if not self.caught_up():
            return []
        head = self._chain.store.head
        account = account_for_key(self._chain.store.get_state, self.key.public_key)
        if account is None:
            return []
        nonce = account["nonce"]
        raws = []
        for proposal_id in self.waiting_for_us():
            last = self._joined.get(proposal_id)
            if last is not None and head.height < last + JOIN_RETRY_BLOCKS:
                continue
            nonce += 1
            tx = make_tx(
                self.key,
                self._chain.genesis.chain_id,
                nonce,
                "validator.join",
                {"proposal": proposal_id, "height": head.height, "block_hash": head.block_hash},
            )
            self._joined[proposal_id] = head.height
            raws.append(tx.raw)
        return raws

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            raws = self.join_transactions()
            if raws and self._submit is not None:
                outcomes = await self._submit(raws)
                for outcome in outcomes:
                    if outcome.error is None:
                        log.info(
                            "reported ready to join as a validator (tx %s)",
                            outcome.tx_id.hex() if outcome.tx_id else "?",
                        )
                    else:
                        log.warning("could not report ready: %s", outcome.error.message)
