"""Governance executed deterministically: proposals, votes, expiry, the readiness of a new
validator, the epoch schedule (a change passed in block H signs from H + 2), and account key
rotation that keeps one continuous account."""

from __future__ import annotations

from typing import Any

import pytest
from support.ledger import CHAIN, Account, DictState

from node.ledger import apps, crypto, encoding, governance
from node.ledger.block import BlockHeader, build_block, tx_root_of
from node.ledger.errors import BlockInvalid, TxInvalid
from node.ledger.genesis import (
    AccountInfo,
    ConsensusParams,
    Genesis,
    GovernanceConfig,
    ValidatorInfo,
    compute_hash,
)
from node.ledger.tx import Transaction, make_tx
from p2p.identity import make_certificate

NAMES = ["admin", "org1", "org2", "org3", "org4", "member"]


def validator(i: int) -> tuple[crypto.SigningKey, ValidatorInfo]:
    key = crypto.SigningKey.from_seed(bytes([100 + i]) * 32)
    cert = make_certificate(key.private_key, f"v{i}").decode()
    return key, ValidatorInfo(f"v{i}", key.public_key, f"127.0.0.1:{30000 + i}", cert)


class Chain:
    """A chain of blocks executed against a dict state (no LMDB, no consensus)."""

    def __init__(self, ttl: int = 50) -> None:
        self.accounts = {n: Account(n, i + 1) for i, n in enumerate(NAMES)}
        roles = {"admin": ("admin",)}
        g = Genesis(
            chain_id=CHAIN,
            genesis_time="2026-01-01T00:00:00Z",
            validators=tuple(validator(i)[1] for i in range(4)),
            accounts=tuple(
                AccountInfo(n, a.pub, roles.get(n, ("member",))) for n, a in self.accounts.items()
            ),
            consensus=ConsensusParams(),
            governance=GovernanceConfig(
                governors=("org1", "org2", "org3", "org4"), proposal_ttl_blocks=ttl
            ),
        )
        self.genesis = Genesis(**{**vars(g), "hash": compute_hash(g)})
        self.state = DictState(apps.genesis_state(self.genesis))
        self.height = 0

    def get(self, key: bytes) -> Any:
        return self.state.obj(key)

    def block(self, *txs: Transaction) -> list[apps.TxResult]:
        self.height += 1
        header = BlockHeader(
            1,
            CHAIN,
            self.height,
            bytes([self.height % 256]) * 32,
            0,
            0,
            1000 + self.height,
            tx_root_of(txs),
            len(txs),
            b"\0" * 32,
            b"\0" * 32,
        )
        block = build_block(header, list(txs))
        apps.check_block_txs(
            block,
            self.state,
            chain_id=CHAIN,
            signature_ok=lambda t: t.signature_ok(),
            tx_known=lambda _: False,
        )
        outcome = apps.execute_block(block, self.state)
        self.state.apply(outcome.writes)
        return outcome.results

    def tx(self, who: str, tx_type: str, args: dict[str, Any]) -> Transaction:
        return self.accounts[who].tx(tx_type, args)

    def epoch_for(self, height: int) -> dict[str, Any]:
        return governance.epoch_for_height(self, height)  # type: ignore[arg-type]

    def proposal(self, pid: int) -> dict[str, Any]:
        return self.get(governance.prop_key(pid))


def add_action(i: int) -> dict[str, Any]:
    _, info = validator(i)
    return {
        "type": "add-validator",
        "name": info.name,
        "public_key": info.public_key,
        "address": info.address,
        "certificate": info.certificate,
    }


def test_a_removal_passes_with_more_than_two_thirds_and_signs_from_two_blocks_later() -> None:
    c = Chain()
    (r,) = c.block(
        c.tx("org1", "gov.propose", {"action": {"type": "remove-validator", "name": "v3"}})
    )
    assert r.ok and r.data == {"proposal": 1, "status": "open"}
    (r,) = c.block(c.tx("org2", "gov.vote", {"proposal": 1, "approve": True}))
    assert r.data["status"] == "open"  # 2 of 4 is not more than 2/3
    (r1,) = c.block(c.tx("org3", "gov.vote", {"proposal": 1, "approve": True}))
    assert r1.data["status"] == "queued"
    passed_in = c.height  # H = 3; end of block H schedules it for H + 2
    assert c.proposal(1)["status"] == "scheduled"
    assert c.proposal(1)["effective_height"] == passed_in + 2
    assert [v["name"] for v in c.epoch_for(passed_in + 1)["set"]] == ["v0", "v1", "v2", "v3"]
    assert [v["name"] for v in c.epoch_for(passed_in + 2)["set"]] == ["v0", "v1", "v2"]
    c.block()
    c.block()  # block H + 2 begins the new epoch
    assert c.get(governance.EPOCH)["epoch"] == 1
    assert c.get(governance.EPOCH)["start_height"] == passed_in + 2
    assert c.proposal(1)["status"] == "enacted"
    assert c.get(governance.epoch_key(1))["set"] == c.get(governance.EPOCH)["set"]


def test_outsiders_cannot_vote_and_rejection_and_expiry_close_proposals() -> None:
    c = Chain(ttl=3)
    results = c.block(
        c.tx("member", "gov.propose", {"action": {"type": "remove-validator", "name": "v1"}}),
        c.tx("org1", "gov.propose", {"action": {"type": "remove-validator", "name": "nobody"}}),
        c.tx("org1", "gov.propose", {"action": {"type": "remove-validator", "name": "v1"}}),
        c.tx("org2", "gov.propose", {"action": {"type": "remove-validator", "name": "v2"}}),
    )
    assert [r.code for r in results] == ["not_governor", "unknown_validator", "ok", "ok"]
    results = c.block(
        c.tx("org2", "gov.vote", {"proposal": 1, "approve": False}),
        c.tx("org3", "gov.vote", {"proposal": 1, "approve": False}),
        c.tx("member", "gov.vote", {"proposal": 2, "approve": True}),
    )
    assert [r.code for r in results] == ["ok", "ok", "not_governor"]
    assert c.proposal(1)["status"] == "rejected"
    assert "rejected by 2 of 4" in c.proposal(1)["reason"]
    for _ in range(4):
        c.block()
    assert c.proposal(2)["status"] == "expired"
    (r,) = c.block(c.tx("org1", "gov.vote", {"proposal": 2, "approve": True}))
    assert r.code == "proposal_closed"
    assert c.get(governance.EPOCH)["epoch"] == 0


def test_an_added_validator_waits_until_its_node_proves_it_is_caught_up() -> None:
    c = Chain()
    c.block(c.tx("org1", "gov.propose", {"action": add_action(4)}))
    c.block(
        c.tx("org2", "gov.vote", {"proposal": 1, "approve": True}),
        c.tx("org3", "gov.vote", {"proposal": 1, "approve": True}),
    )
    assert c.proposal(1)["status"] == "waiting-for-candidate"
    for _ in range(3):
        c.block()
    assert c.get(governance.NEXT) is None  # nothing scheduled without the candidate
    node_key, _ = validator(4)
    stale = make_tx(
        node_key, CHAIN, 1, "validator.join", {"proposal": 1, "height": 1, "block_hash": bytes(32)}
    )
    (r,) = c.block(stale)
    assert r.code == "wrong_block"
    recent = dict(c.get(governance.RECENT)["blocks"])
    good = make_tx(
        node_key,
        CHAIN,
        2,
        "validator.join",
        {"proposal": 1, "height": c.height - 1, "block_hash": recent[c.height - 1]},
    )
    (r,) = c.block(good)
    assert r.ok, r.reason
    assert c.proposal(1)["status"] == "scheduled"
    assert len(c.epoch_for(c.height + 2)["set"]) == 5
    # A candidate may do nothing else.
    (r,) = c.block(make_tx(node_key, CHAIN, 3, "notary.anchor", {"digest": b"\1" * 32}))
    assert r.code == "not_permitted"


def test_changes_queue_one_at_a_time() -> None:
    c = Chain()
    c.block(
        c.tx("org1", "gov.propose", {"action": {"type": "remove-validator", "name": "v3"}}),
        c.tx(
            "org1",
            "gov.propose",
            {"action": {"type": "set-params", "params": {"max_block_txs": 500}}},
        ),
    )
    c.block(
        *[
            c.tx(o, "gov.vote", {"proposal": p, "approve": True})
            for o in ("org2", "org3")
            for p in (1, 2)
        ]
    )
    assert c.proposal(1)["status"] == "scheduled" and c.proposal(2)["status"] == "queued"
    start = c.proposal(1)["effective_height"]
    while c.height < start:
        c.block()
    assert c.proposal(2)["status"] == "scheduled"
    assert c.proposal(2)["effective_height"] == start + 2
    assert c.epoch_for(start + 2)["params"]["max_block_txs"] == 500
    assert len(c.epoch_for(start + 2)["set"]) == 3


def test_a_change_that_leaves_no_validator_is_refused() -> None:
    with pytest.raises(governance.GovernanceRefused, match="no validator"):
        governance.apply_action(
            [{"name": "only", "public_key": b"k", "address": "h:1", "certificate": ""}],
            {},
            {"type": "remove-validator", "name": "only"},
        )


def test_schema_checks_the_certificate_is_for_the_key() -> None:
    action = add_action(5)
    action["public_key"] = validator(6)[1].public_key
    with pytest.raises(TxInvalid, match="certificate is not for public_key"):
        make_tx(crypto.SigningKey.generate(), CHAIN, 1, "gov.propose", {"action": action})
    with pytest.raises(TxInvalid, match="cannot change live"):
        make_tx(
            crypto.SigningKey.generate(),
            CHAIN,
            1,
            "gov.propose",
            {"action": {"type": "set-params", "params": {"max_block_bytes": 1}}},
        )


def test_key_rotation_keeps_one_account_and_refuses_the_old_key() -> None:
    c = Chain()
    maker = c.accounts["member"]
    other = c.accounts["org1"]
    c.block(
        maker.tx("item.register", {"item": "pallet"}),
        maker.tx("record.put", {"ns": "ns", "key": "k", "value": 1}),
    )
    new_key = crypto.SigningKey.from_seed(b"\x77" * 32)
    (r,) = c.block(maker.tx("account.rotate", {"new_key": new_key.public_key}))
    assert r.ok and r.data["account"] == maker.pub
    # The old key no longer signs: a block holding its tx is invalid.
    with pytest.raises(BlockInvalid, match="rotated away"):
        c.block(maker.tx("record.put", {"ns": "ns", "key": "k", "value": 2}))
    c.height -= 1
    nonce = maker.nonce  # the account's nonce continues under the new key
    results = c.block(
        make_tx(new_key, CHAIN, nonce, "record.put", {"ns": "ns", "key": "k", "value": 3}),
        make_tx(new_key, CHAIN, nonce + 1, "item.transfer", {"item": "pallet", "to": other.pub}),
    )
    assert [x.code for x in results] == ["ok", "ok"], results
    record = c.get(apps.record_key("ns", "k"))
    assert record["owner"] == maker.pub and record["version"] == 2
    account = c.get(b"acct/" + maker.pub)
    assert account["key"] == new_key.public_key and account["nonce"] == nonce + 1
    assert c.get(b"acct/" + new_key.public_key) == {"alias_of": maker.pub}
    # Rotating again retires the second key too.
    newer = crypto.SigningKey.from_seed(b"\x78" * 32)
    (r,) = c.block(
        make_tx(new_key, CHAIN, nonce + 2, "account.rotate", {"new_key": newer.public_key})
    )
    assert r.ok
    assert c.get(b"acct/" + new_key.public_key)["retired"] is True
    raw = encoding.pack({"alias_of": maker.pub, "retired": True})
    assert c.state.get(b"acct/" + new_key.public_key) == raw
