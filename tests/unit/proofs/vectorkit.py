"""The published test vectors (tests/vectors/*.json): how they are made (documents.json in
docvectors.py, bundles.json in bundlevectors.py), and how the
implementation is checked against them (test_vectors.py).

Every file but documents.json is a pure function of fixed seeds and values: the test
rebuilds it and requires the file to be exactly equal, so that the implementation and the
published vectors cannot drift apart. documents.json holds real receipts and state proofs
(valid, and tampered with the rule a verifier must give); its RFC 3161 token comes from a
local openssl TSA when it is made, so the test verifies its documents rather than rebuild
them. Regenerate with `python scripts/make_vectors.py` after a deliberate format change and
read the diff.

Binary values inside JSON are tagged {"$bin": "<hex>"} where the vector shows a msgpack
value (args, header and genesis maps), and plain hex strings elsewhere.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lmdb

from consensus import CommitCertificate, vote_signing_bytes
from consensus.bfttime import certified_time_of
from consensus.certificates import untimed_commit_signing_bytes
from node.ledger import crypto, encoding, merkle
from node.ledger.apps import TxResult, genesis_state
from node.ledger.block import HEADER_DOMAIN, BlockHeader, build_block, tx_root_of
from node.ledger.genesis import parse_genesis
from node.ledger.stateroot import state_root
from node.ledger.statetree import EMPTY_ROOT, StateTree, key_hash, leaf_hash, value_hash
from node.ledger.tx import TX_DOMAIN, decode_tx, make_tx

VECTORS = Path(__file__).resolve().parents[2] / "vectors"
CONFIGS = Path(__file__).resolve().parents[3] / "configs"
FORMAT = "chain-vectors/1"
CHAIN = "vector-chain"


def seed_key(n: int) -> crypto.SigningKey:
    return crypto.SigningKey.from_seed(bytes([n]) * 32)


def tagged(value: Any) -> Any:
    """A msgpack value as JSON: bytes as {"$bin": hex}."""
    if isinstance(value, bytes):
        return {"$bin": value.hex()}
    if isinstance(value, dict):
        return {k: tagged(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [tagged(v) for v in value]
    return value


def untagged(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$bin"}:
            return bytes.fromhex(value["$bin"])
        return {k: untagged(v) for k, v in value.items()}
    if isinstance(value, list):
        return [untagged(v) for v in value]
    return value


# --- transactions ------------------------------------------------------------------------------

TX_CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("record.put", "record.put", {"ns": "spec", "key": "p1", "value": {"w": 12, "ok": True}}),
    ("item.register minimal", "item.register", {"item": "crate-1"}),
    (
        "item.register full",
        "item.register",
        {"item": "pallet-1", "meta": {"origin": "Lyon"}, "parents": ["crate-1", "crate-2"]},
    ),
    ("item.transfer", "item.transfer", {"item": "pallet-1", "to": b"\x02" * 32, "note": "dock 4"}),
    ("item.event minimal", "item.event", {"item": "pallet-1", "kind": "inspected"}),
    (
        "item.event full, digest nil",
        "item.event",
        {
            "item": "pallet-1",
            "kind": "packed",
            "location": "Lyon",
            "note": "ok",
            "time_ms": 1_767_225_600_000,
            "digest": None,
        },
    ),
    ("item.event with digest", "item.event",
     {"item": "p", "kind": "photo", "digest": b"\x11" * 32}),
    ("item.register, 128 characters (256 bytes of UTF-8)", "item.register", {"item": "é" * 128}),
    ("notary.anchor", "notary.anchor", {"digest": b"\x22" * 32, "meta": {"title": "contract"}}),
    (
        "account.grant",
        "account.grant",
        {"account": b"\x03" * 32, "roles": ["member", "inspector"], "name": "Zoë"},
    ),
    ("account.revoke", "account.revoke", {"account": b"\x03" * 32}),
    ("account.rotate", "account.rotate", {"new_key": b"\x04" * 32}),
    ("gov.propose set-params", "gov.propose", {
        "action": {"type": "set-params", "params": {"max_block_txs": 500}}, "note": "smaller"}),
    ("gov.propose remove-validator", "gov.propose", {
        "action": {"type": "remove-validator", "name": "node3"}}),
    ("gov.vote", "gov.vote", {"proposal": 1, "approve": True}),
    ("validator.join", "validator.join", {"proposal": 2, "height": 40, "block_hash": b"\x05" * 32}),
    ("checkpoint.timestamp", "checkpoint.timestamp",
     {"height": 10, "response": b"\x30\x03\x02\x01\x00"}),
]  # fmt: skip


def _raw_tx(body: dict[str, Any], key: crypto.SigningKey) -> bytes:
    packed = encoding.pack(body)
    return encoding.pack([packed, key.sign(TX_DOMAIN + packed)])


def _invalid_txs(key: crypto.SigningKey) -> list[tuple[str, bytes]]:
    def body(**changes: Any) -> dict[str, Any]:
        base = {"v": 1, "chain_id": CHAIN, "sender": key.public_key, "nonce": 1,
                "type": "item.register", "args": {"item": "x"}}  # fmt: skip
        return {**base, **changes}

    good = _raw_tx(body(), key)
    return [
        ("optional field given as nil (only item.event digest may be nil)",
         _raw_tx(body(args={"item": "x", "meta": None}), key)),
        ("unknown args field", _raw_tx(body(args={"item": "x", "colour": "red"}), key)),
        ("string limit counts characters: 129 characters",
         _raw_tx(body(args={"item": "é" * 129}), key)),
        ("control character in a string", _raw_tx(body(args={"item": "a\nb"}), key)),
        ("unknown body key", _raw_tx({**body(), "memo": "hi"}, key)),
        ("nonce 0", _raw_tx(body(nonce=0), key)),
        ("unknown type", _raw_tx(body(type="item.burn"), key)),
        ("map keys not sorted (not canonical)",
         good.replace(encoding.pack(body()), _unsorted(body()))),
        ("signature of 63 bytes", encoding.pack([encoding.pack(body()), b"\x00" * 63])),
    ]  # fmt: skip


def _unsorted(value: dict[str, Any]) -> bytes:
    import msgpack

    packed: bytes = msgpack.packb(dict(reversed(list(value.items()))), use_bin_type=True)
    return packed


def transactions() -> dict[str, Any]:
    cases = []
    for n, (name, tx_type, args) in enumerate(TX_CASES):
        key = seed_key(1)
        tx = make_tx(key, CHAIN, n + 1, tx_type, args)
        cases.append(
            {
                "name": name,
                "seed": key.seed().hex(),
                "sender": key.public_key.hex(),
                "nonce": n + 1,
                "type": tx_type,
                "args": tagged(args),
                "body": tx.body.hex(),
                "signature": tx.signature.hex(),
                "wire": tx.raw.hex(),
                "tx_id": tx.tx_id.hex(),
            }
        )
    invalid = []
    for name, raw in _invalid_txs(seed_key(1)):
        try:
            decode_tx(raw)
        except Exception as exc:  # TxInvalid: the code a node answers with
            invalid.append({"name": name, "wire": raw.hex(), "code": getattr(exc, "code", "")})
            continue
        raise AssertionError(f"invalid tx vector {name!r} decodes")
    return {
        "format": FORMAT,
        "about": "transaction bodies, signatures, wire bytes and ids (docs/PROTOCOL.md "
        "section 4), and wire bytes a node must refuse with the given code",
        "chain_id": CHAIN,
        "signing_domain": TX_DOMAIN.hex(),
        "cases": cases,
        "invalid": invalid,
    }


# --- blocks, votes, certificates -----------------------------------------------------------------


def _header(version: int, height: int = 7, **changes: Any) -> BlockHeader:
    fields: dict[str, Any] = dict(
        version=version, chain_id=CHAIN, height=height, prev_hash=b"\x01" * 32, view=5,
        proposer=1, timestamp_ms=1_767_225_607_000, tx_root=b"\x02" * 32, tx_count=2,
        state_root=b"\x03" * 32, results_root=b"\x04" * 32,
    )  # fmt: skip
    if version >= 2:
        fields.update(epoch=1, next_validators_hash=b"\x05" * 32)
    fields.update(changes)
    return BlockHeader(**fields)


def blocks() -> dict[str, Any]:
    key = seed_key(1)
    txs = [make_tx(key, CHAIN, n, "item.register", {"item": f"c-{n}"}) for n in (1, 2)]
    headers = []
    for name, header in (("version 1", _header(1)), ("version 2", _header(2))):
        headers.append(
            {
                "name": name,
                "header": tagged(header.to_obj()),
                "bytes": header.encode().hex(),
                "block_hash": header.hash().hex(),
            }
        )
    header = _header(2, tx_root=tx_root_of(txs), tx_count=2)
    block = build_block(header, txs)
    results = [
        TxResult(txs[0].tx_id, True, "ok", "", {}),
        TxResult(txs[1].tx_id, False, "item_exists", "item c-2 is registered", {"height": 3}),
    ]
    return {
        "format": FORMAT,
        "about": "canonical headers and block hashes (domain " + HEADER_DOMAIN.hex() + "), "
        "a block payload, and result encodings (docs/PROTOCOL.md sections 6 and 7)",
        "headers": headers,
        "payload": {
            "txs": [t.raw.hex() for t in txs],
            "header": tagged(header.to_obj()),
            "payload": block.payload.hex(),
            "tx_root": header.tx_root.hex(),
            "block_hash": block.hash.hex(),
        },
        "results": [{"result": tagged(r.to_obj()), "bytes": r.encode().hex()} for r in results],
        "results_root": merkle.merkle_root([r.encode() for r in results]).hex(),
    }


def votes() -> dict[str, Any]:
    keys = [seed_key(100 + i) for i in range(4)]
    digest = crypto.sha256(b"block")
    out_votes = []
    for phase, time_ms in (("pre-prepare", None), ("prepare", None), ("commit", 1_767_225_607_123)):
        signing = vote_signing_bytes(CHAIN, phase, 3, 7, digest, time_ms or 0)
        out_votes.append(
            {
                "phase": phase,
                "chain_id": CHAIN,
                "view": 3,
                "height": 7,
                "digest": digest.hex(),
                "time_ms": time_ms,
                "bytes": signing.hex(),
                "signer_seed": keys[0].seed().hex(),
                "signature": keys[0].sign(signing).hex(),
            }
        )
    untimed = untimed_commit_signing_bytes(CHAIN, 3, 7, digest)
    v1 = CommitCertificate(7, 3, digest, tuple((i, keys[i].sign(untimed)) for i in (0, 1, 3)))
    times = (1_767_225_607_120, 1_767_225_607_250, 1_767_225_607_090)
    v2 = CommitCertificate(
        7,
        3,
        digest,
        tuple(
            (i, keys[i].sign(vote_signing_bytes(CHAIN, "commit", 3, 7, digest, t)))
            for i, t in zip((0, 1, 3), times, strict=True)
        ),
        times,
    )
    times_cases = [
        ([1000, 1005, 0], 4),
        ([1000, 1005, 9999], 4),
        ([1000, 1002, 1005, 1001], 4),
        ([5, 1, 9, 3, 7], 7),
        ([70, 10, 40, 20, 60, 30, 50], 10),
        ([42], 1),
    ]
    return {
        "format": FORMAT,
        "about": "vote signing bytes and commit certificates, untimed (version 1) and timed "
        "(version 2), and certified times (docs/PROTOCOL.md sections 10 and 11)",
        "validators": [{"seed": k.seed().hex(), "public_key": k.public_key.hex()} for k in keys],
        "votes": out_votes,
        "untimed_commit_bytes": untimed.hex(),
        "certificates": [
            {"version": 1, "bytes": v1.to_bytes().hex()},
            {"version": 2, "bytes": v2.to_bytes().hex()},
        ],
        "certified_times": [
            {
                "n": n,
                "readings": readings,
                "median_ms": certified_time_of(readings, n)[0],
                "window_ms": list(certified_time_of(readings, n)[1]),
            }
            for readings, n in times_cases
        ],
    }


# --- Merkle trees ---------------------------------------------------------------------------------

# The Certificate Transparency reference leaves (RFC 6962 test data).
CT_LEAVES = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]


def rfc6962() -> dict[str, Any]:
    leaves = [bytes.fromhex(h) for h in CT_LEAVES]
    trees = []
    for n in range(len(leaves) + 1):
        subset = leaves[:n]
        trees.append(
            {
                "size": n,
                "root": merkle.merkle_root(subset).hex(),
                "inclusion": [
                    [h.hex() for h in merkle.inclusion_proof(subset, i)] for i in range(n)
                ],
            }
        )
    return {
        "format": FORMAT,
        "about": "RFC 6962 roots and inclusion paths over the first n CT reference leaves",
        "leaves": CT_LEAVES,
        "trees": trees,
    }


def _proof_json(proof: Any) -> dict[str, Any]:
    from node.daemon.api.receipts import proof_json

    return proof_json(proof)


def _named(prefix: str) -> Iterator[bytes]:
    """prefix + 0, 1, 2, ... (bounded: the searches below end within a few thousand)."""
    for n in range(1 << 16):
        yield f"{prefix}{n}".encode()


def statetree() -> dict[str, Any]:
    items = {f"item/crate-{i}".encode(): encoding.pack({"n": i}) for i in range(6)}
    items[b"acct/" + b"\x09" * 32] = encoding.pack({"name": "zed"})
    # A key whose hash shares the first byte with crate-0's: the two sit under a run of
    # one-sided levels, where an absent key can end in an empty subtree.
    twin = next(k for k in _named("item/twin-") if key_hash(k)[0] == key_hash(b"item/crate-0")[0])
    items[twin] = encoding.pack({"twin": True})
    absent = [b"item/ghost", b"item/crate-9", b"rec/x\x00y", b"notary/" + b"\x00" * 32]
    with tempfile.TemporaryDirectory() as tmp:
        env = lmdb.open(tmp, map_size=1 << 24, max_dbs=2)
        try:
            tree = StateTree(env.open_db(b"state_nodes"))
            with env.begin(write=True) as txn:
                root = tree.update(txn, EMPTY_ROOT, items)
            with env.begin() as txn:
                # An absent key whose path ends in an empty subtree (the first such one).
                absent.append(
                    next(
                        k for k in _named("item/ghost-") if not tree.prove(txn, root, k).other_leaf
                    )
                )
                proofs = {k: tree.prove(txn, root, k) for k in [*items, *absent]}
        finally:
            env.close()
    assert root == state_root(items)  # the stored tree agrees with the definition
    single_key = b"item/only"
    single = {single_key: b"\x01"}
    return {
        "format": FORMAT,
        "about": "the state tree: key and value hashes, leaves, roots, presence and absence "
        "proofs (docs/PROTOCOL.md section 9)",
        "empty_root": EMPTY_ROOT.hex(),
        "single": {
            "key": single_key.hex(),
            "value": "01",
            "key_hash": key_hash(single_key).hex(),
            "value_hash": value_hash(b"\x01").hex(),
            "root": state_root(single).hex(),
            "leaf": leaf_hash(key_hash(single_key), value_hash(b"\x01")).hex(),
        },
        "items": {k.hex(): v.hex() for k, v in items.items()},
        "root": root.hex(),
        "proofs": [
            {
                "key": k.hex(),
                "key_hash": key_hash(k).hex(),
                "value": items[k].hex() if k in items else None,
                "proof": _proof_json(proofs[k]),
                "kind": "presence"
                if k in items
                else ("absence, other leaf" if proofs[k].other_leaf else "absence, empty"),
            }
            for k in [*items, *absent]
        ],
    }


def genesis() -> dict[str, Any]:
    import tomllib

    text = (CONFIGS / "genesis.example.toml").read_text()
    g = parse_genesis(tomllib.loads(text), "genesis.example.toml")
    state = genesis_state(g)
    return {
        "format": FORMAT,
        "about": "the example genesis (configs/genesis.example.toml, inlined), its genesis map "
        "with every default filled in, the canonical bytes, the genesis hash, and the genesis "
        "state with its root (block 1's state_root) "
        "(docs/PROTOCOL.md section 3)",
        "toml": text,
        "map": tagged(g.to_obj()),
        "bytes": encoding.pack(g.to_obj()).hex(),
        "genesis_hash": g.hash.hex(),
        "state": {k.hex(): v.hex() for k, v in sorted(state.items())},
        "state_root": state_root(state).hex(),
    }


DETERMINISTIC: dict[str, Callable[[], dict[str, Any]]] = {
    "transactions.json": transactions,
    "blocks.json": blocks,
    "votes.json": votes,
    "rfc6962.json": rfc6962,
    "statetree.json": statetree,
    "genesis.json": genesis,
}


def dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
