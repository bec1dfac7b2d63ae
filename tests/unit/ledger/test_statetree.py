"""The authenticated state tree, against a literal implementation of its hashing rule."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import lmdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.ledger.encoding import pack, unpack
from node.ledger.statetree import (
    EMPTY_ROOT,
    CorruptStateTreeError,
    StateProof,
    StateTree,
    UnknownRootError,
    key_hash,
    leaf_hash,
    value_hash,
    verify_state_proof,
    verify_state_proof_by_hash,
)

ZERO = bytes(32)


def H(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# --- the oracle: the hashing rule of the module docstring, level by level, no compression --


def reference_root(pairs: Mapping[bytes, bytes]) -> bytes:
    """Root over key_hash -> value_hash pairs, straight from the definition."""

    def subtree(items: list[tuple[int, bytes, bytes]], depth: int) -> bytes:
        if not items:
            return ZERO
        if len(items) == 1:
            return H(b"\x00" + items[0][1] + items[0][2])
        left = [it for it in items if not (it[0] >> (255 - depth)) & 1]
        right = [it for it in items if (it[0] >> (255 - depth)) & 1]
        return H(b"\x01" + subtree(left, depth + 1) + subtree(right, depth + 1))

    return subtree([(int.from_bytes(k, "big"), k, v) for k, v in pairs.items()], 0)


def reference_root_of_values(model: Mapping[bytes, bytes]) -> bytes:
    return reference_root({H(k): H(v) for k, v in model.items()})


# --- fixtures and helpers ------------------------------------------------------------------


class Store:
    def __init__(self, path: Path) -> None:
        self.env = lmdb.open(str(path), map_size=1 << 30, max_dbs=4)
        self.db = self.env.open_db(b"state_nodes")
        self.tree = StateTree(self.db)

    def update(self, root: bytes, changes: Mapping[bytes, bytes | None]) -> bytes:
        with self.env.begin(write=True) as txn:
            return self.tree.update(txn, root, changes)

    def update_hashed(self, root: bytes, changes: Mapping[bytes, bytes | None]) -> bytes:
        with self.env.begin(write=True) as txn:
            return self.tree.update_hashed(txn, root, changes)

    def get(self, root: bytes, key: bytes) -> bytes | None:
        with self.env.begin() as txn:
            return self.tree.get_value_hash(txn, root, key)

    def prove(self, root: bytes, key: bytes) -> StateProof:
        with self.env.begin() as txn:
            return self.tree.prove(txn, root, key)

    def prove_hashed(self, root: bytes, kh: bytes) -> StateProof:
        with self.env.begin() as txn:
            return self.tree.prove_hashed(txn, root, kh)

    def reachable(self, root: bytes) -> set[bytes]:
        """Every node reference reachable from root (checks that each one exists)."""
        found: set[bytes] = set()
        if root == ZERO:
            return found
        with self.env.begin() as txn:
            stack = [txn.get(b"\x01" + root, db=self.db)]
            for _ in range(10_000_000):
                if not stack:
                    return found
                ref = stack.pop()
                record = txn.get(b"\x02" + ref, db=self.db)
                assert record is not None, f"dangling reference {ref.hex()}"
                found.add(ref)
                if record[0] == 1:
                    stack += [record[2:42], record[42:82]]
        raise AssertionError("tree walk did not finish")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state")
    yield s
    s.env.close()


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    # Hypothesis examples share one database: roots are content-addressed and every old
    # root stays readable, so examples cannot disturb each other (and many roots in one
    # database is itself part of what is tested).
    s = Store(tmp_path_factory.mktemp("shared") / "state")
    yield s
    s.env.close()


def keyset(seed: int, count: int) -> dict[bytes, bytes]:
    rng = random.Random(seed)
    return {
        rng.randbytes(rng.randint(1, 20)): rng.randbytes(rng.randint(0, 40)) for _ in range(count)
    }


def flip(data: bytes, index: int, mask: int = 1) -> bytes:
    return data[:index] + bytes([data[index] ^ mask]) + data[index + 1 :]


def assert_proof_is_exact(root: bytes, key: bytes, value: bytes | None, proof: StateProof) -> None:
    """The proof verifies; any change to root, key, value or any proof byte fails."""
    assert verify_state_proof(root, key, value, proof)
    assert not verify_state_proof(flip(root, 7), key, value, proof)
    if value is not None:
        # (An absence proof legitimately covers every key absent under the same subtree.)
        assert not verify_state_proof(root, key + b"?", value, proof)
    assert not verify_state_proof(root, key, b"other" if value is None else value + b"!", proof)
    if value is not None:
        assert not verify_state_proof(root, key, None, proof)
        if proof.siblings:
            assert not verify_state_proof(root, key, value, StateProof(proof.siblings[:-1]))
        assert not verify_state_proof(root, key, value, StateProof((*proof.siblings, ZERO)))
    encoded = pack(proof.to_obj())
    assert StateProof.from_obj(unpack(encoded)) == proof
    for i in range(len(encoded)):
        for mask in (0x01, 0x80):
            try:
                changed = StateProof.from_obj(unpack(flip(encoded, i, mask)))
            except ValueError:  # EncodingError is a ValueError
                continue
            assert not verify_state_proof(root, key, value, changed), (i, mask)


# --- tests ---------------------------------------------------------------------------------


def test_empty_tree(store: Store) -> None:
    assert store.update(EMPTY_ROOT, {}) == EMPTY_ROOT
    assert store.update(EMPTY_ROOT, {b"absent": None}) == EMPTY_ROOT
    assert store.get(EMPTY_ROOT, b"k") is None
    proof = store.prove(EMPTY_ROOT, b"k")
    assert proof == StateProof(())
    assert_proof_is_exact(EMPTY_ROOT, b"k", None, proof)
    assert not verify_state_proof(EMPTY_ROOT, b"k", b"v", proof)


def test_single_key_root_is_its_leaf_hash(store: Store) -> None:
    root = store.update(EMPTY_ROOT, {b"k": b"v"})
    assert root == leaf_hash(key_hash(b"k"), value_hash(b"v"))
    assert root == H(b"\x00" + H(b"k") + H(b"v"))
    assert store.get(root, b"k") == H(b"v")
    assert_proof_is_exact(root, b"k", b"v", store.prove(root, b"k"))
    assert_proof_is_exact(root, b"other", None, store.prove(root, b"other"))
    assert store.update(root, {b"k": None}) == EMPTY_ROOT


def test_two_keys_match_the_definition(store: Store) -> None:
    model = {b"a": b"1", b"b": b"2"}
    root = store.update(EMPTY_ROOT, model)
    assert root == reference_root_of_values(model)
    assert store.reachable(root) and len(store.reachable(root)) == 3


@pytest.mark.parametrize("count", [3, 17, 200, 1500])
def test_root_matches_reference_and_every_key_reads_back(store: Store, count: int) -> None:
    model = keyset(count, count)
    root = store.update(EMPTY_ROOT, model)
    assert root == reference_root_of_values(model)
    for key, value in model.items():
        assert store.get(root, key) == H(value)
    assert store.get(root, b"not there") is None
    # 2n - 1 nodes: n leaves and n - 1 branches; nothing else is reachable.
    assert len(store.reachable(root)) == 2 * len(model) - 1


def test_insertion_order_and_batching_do_not_matter(store: Store) -> None:
    model = keyset(7, 300)
    one_batch = store.update(EMPTY_ROOT, model)
    items = list(model.items())
    for seed in range(3):
        random.Random(seed).shuffle(items)
        root = EMPTY_ROOT
        position = 0
        rng = random.Random(seed + 100)
        for _ in range(len(items)):  # bounded: every pass consumes at least one item
            if position >= len(items):
                break
            size = rng.choice([1, 1, 2, 5, 40])
            root = store.update(root, dict(items[position : position + size]))
            position += size
        assert root == one_batch


def test_deletes_restore_previous_roots(store: Store) -> None:
    base = keyset(11, 250)
    root_base = store.update(EMPTY_ROOT, base)
    extra = keyset(12, 60)
    root_more = store.update(root_base, extra)
    assert store.update(root_more, dict.fromkeys(extra)) == root_base
    # Deleting everything, in pieces, ends at the empty root.
    root = root_more
    keys = list(base) + list(extra)
    for start in range(0, len(keys), 37):
        root = store.update(root, dict.fromkeys(keys[start : start + 37]))
    assert root == EMPTY_ROOT


def test_updates_and_mixed_batches_match_reference(store: Store) -> None:
    rng = random.Random(5)
    model = keyset(5, 400)
    root = store.update(EMPTY_ROOT, model)
    for _ in range(15):
        changes: dict[bytes, bytes | None] = {}
        for key in rng.sample(sorted(model), 30):
            changes[key] = None if rng.random() < 0.5 else rng.randbytes(8)
        for _ in range(30):
            changes[rng.randbytes(6)] = rng.randbytes(5)
        for _ in range(10):
            changes[rng.randbytes(7)] = None  # deletes of absent keys are no-ops
        root = store.update(root, changes)
        for key, value in changes.items():
            if value is None:
                model.pop(key, None)
            else:
                model[key] = value
        assert root == reference_root_of_values(model)


def test_rewriting_same_values_writes_nothing(store: Store) -> None:
    model = keyset(3, 100)
    root = store.update(EMPTY_ROOT, model)
    subset = dict(list(model.items())[:20])
    with store.env.begin(write=True) as txn:
        new_root, stats = store.tree.update_with_stats(txn, root, subset)
    assert new_root == root
    assert stats.nodes_written == 0


def test_batch_writes_each_new_node_once(store: Store) -> None:
    model = keyset(21, 2000)
    root = store.update(EMPTY_ROOT, model)
    rng = random.Random(2100)  # not keyset's seed: new keys must not collide with old ones
    changes: dict[bytes, bytes | None] = {k: None for k in rng.sample(sorted(model), 300)}
    changes.update({rng.randbytes(9): b"new" for _ in range(300)})
    assert len(changes) == 600 and not any(k in model for k in list(changes)[300:])
    before = store.reachable(root)
    with store.env.begin(write=True) as txn:
        new_root, stats = store.tree.update_with_stats(txn, root, changes)
    after = store.reachable(new_root)
    # Every node written is part of the new tree, and every node of the new tree that the
    # old one lacks was written exactly once (the dict of writes has one entry per ref).
    assert stats.nodes_written == len(after - before)
    # Leaves of untouched keys keep their references: they were not written again.
    changed_hashes = {key_hash(k) for k in changes}
    with store.env.begin() as txn:
        old_leaves = set()
        for ref in before:
            record = txn.get(b"\x02" + ref, db=store.db)
            if record[0] == 0 and record[1:33] not in changed_hashes:
                old_leaves.add(ref)
    assert len(old_leaves) == len(model) - 300
    assert old_leaves <= after


def test_single_write_costs_about_log2_n_hashes(store: Store) -> None:
    model = keyset(8, 4096)
    root = store.update(EMPTY_ROOT, model)
    costs = []
    for i in range(20):
        with store.env.begin(write=True) as txn:
            _, stats = store.tree.update_with_stats(txn, root, {f"new{i}".encode(): b"v"})
            txn.abort()
        costs.append(stats.hashes)
    # log2(4096) = 12 levels; a plain sparse Merkle tree would hash 256 levels.
    assert max(costs) < 40
    assert sum(costs) / len(costs) < 25


def test_old_roots_still_answer(store: Store) -> None:
    rng = random.Random(9)
    history: list[tuple[bytes, dict[bytes, bytes]]] = []
    model: dict[bytes, bytes] = {}
    root = EMPTY_ROOT
    keys = [f"key-{i}".encode() for i in range(80)]
    for _ in range(12):
        changes: dict[bytes, bytes | None] = {}
        for key in rng.sample(keys, 15):
            changes[key] = None if key in model and rng.random() < 0.4 else rng.randbytes(4)
        root = store.update(root, changes)
        for key, value in changes.items():
            if value is None:
                model.pop(key, None)
            else:
                model[key] = value
        history.append((root, dict(model)))
    for old_root, old_model in history:
        assert old_root == reference_root_of_values(old_model)
        for key in keys:
            expected = old_model.get(key)
            assert store.get(old_root, key) == (None if expected is None else H(expected))
            assert verify_state_proof(old_root, key, expected, store.prove(old_root, key))


def test_presence_and_absence_proofs_are_exact(store: Store) -> None:
    model = keyset(4, 120)
    root = store.update(EMPTY_ROOT, model)
    for key in sorted(model)[:12]:
        proof = store.prove(root, key)
        assert proof.other_leaf is None
        assert_proof_is_exact(root, key, model[key], proof)
    absent_kinds = set()
    for i in range(30):
        key = f"absent-{i}".encode()
        proof = store.prove(root, key)
        absent_kinds.add(proof.other_leaf is None)
        assert_proof_is_exact(root, key, None, proof) if i < 6 else None
        assert verify_state_proof(root, key, None, proof)
        assert not verify_state_proof(root, key, b"", proof)
    assert absent_kinds == {True, False}  # both kinds of absence were exercised
    # An absence proof of a missing key cannot pass for a present one.
    for key in sorted(model)[:12]:
        absent_proof = store.prove(root, b"absent-0")
        assert not verify_state_proof(root, key, None, absent_proof)
        assert not verify_state_proof(root, key, None, store.prove(root, key))
    # A presence proof dressed up as "the leaf found there is another key" must not prove
    # the key absent.
    for key in sorted(model)[:12]:
        presence = store.prove(root, key)
        disguised = StateProof(presence.siblings, (key_hash(key), value_hash(model[key])))
        assert not verify_state_proof(root, key, None, disguised)
    # A presence proof of one key proves nothing about another key.
    some_key = next(iter(model))
    proof = store.prove(root, some_key)
    assert not any(
        verify_state_proof(root, other, model[other], proof) for other in model if other != some_key
    )


# --- crafted key hashes: extreme depths and prefixes ---------------------------------------


def kh_from_bits(bits: str) -> bytes:
    return int(bits.ljust(256, "0"), 2).to_bytes(32, "big")


def test_keys_differing_only_in_the_last_bit(store: Store) -> None:
    a = bytes(32)
    b = bytes(31) + b"\x01"
    c = bytes(31) + b"\x02"  # diverges from both at level 254
    pairs = {a: H(b"A"), b: H(b"B")}
    root = store.update_hashed(EMPTY_ROOT, pairs)
    assert root == reference_root(pairs)
    proof = store.prove_hashed(root, b)
    assert len(proof.siblings) == 256
    assert verify_state_proof_by_hash(root, b, H(b"B"), proof)
    assert not verify_state_proof_by_hash(root, a, H(b"B"), proof)
    absent = store.prove_hashed(root, c)
    assert len(absent.siblings) == 255 and absent.other_leaf is None
    assert verify_state_proof_by_hash(root, c, None, absent)
    assert StateProof.from_obj(unpack(pack(proof.to_obj()))) == proof
    with_c = store.update_hashed(root, {c: H(b"C")})
    assert with_c == reference_root({**pairs, c: H(b"C")})
    assert store.update_hashed(with_c, {a: None, b: None}) == leaf_hash(c, H(b"C"))


def test_inserts_above_and_between_existing_branches(store: Store) -> None:
    deep = {kh_from_bits("1" * 200 + "0"): H(b"x"), kh_from_bits("1" * 200 + "1"): H(b"y")}
    root = store.update_hashed(EMPTY_ROOT, deep)
    model = dict(deep)
    # Each insert leaves the existing common prefix at a different level, above, below or
    # right at earlier splits, with absent-key deletes mixed in.
    steps: list[dict[bytes, bytes | None]] = [
        {kh_from_bits("1" * 100 + "0"): H(b"1"), kh_from_bits("0"): None},
        {kh_from_bits("1" * 150 + "0"): H(b"2"), kh_from_bits("1" * 50 + "0"): H(b"3")},
        {kh_from_bits("0" * 10): H(b"4"), kh_from_bits("1" * 199 + "0"): H(b"5")},
        {kh_from_bits("1" * 100 + "0"): None, kh_from_bits("1" * 201): None},
        {kh_from_bits("1" * 200 + "0"): None, kh_from_bits("1" * 120 + "01"): H(b"6")},
    ]
    for changes in steps:
        root = store.update_hashed(root, changes)
        for kh, vh in changes.items():
            if vh is None:
                model.pop(kh, None)
            else:
                model[kh] = vh
        assert root == reference_root(model)
        assert len(store.reachable(root)) == 2 * len(model) - 1
        for kh in [*model, kh_from_bits("1" * 160 + "0"), kh_from_bits("01")]:
            proof = store.prove_hashed(root, kh)
            assert verify_state_proof_by_hash(root, kh, model.get(kh), proof)


def test_a_comb_of_256_branches_one_per_level(store: Store) -> None:
    # Key i has i zero bits then a one: the tree has a branch at every depth 0..255 and the
    # all-zero key sits at depth 256, the deepest path the recursion can ever take.
    comb = {kh_from_bits("0" * i + "1"): H(bytes([i])) for i in range(256)}
    deepest = bytes(32)
    pairs = {**comb, deepest: H(b"bottom")}
    # In a worker thread, as the store runs it (trio.to_thread): the recursion fits there.
    with ThreadPoolExecutor(max_workers=1) as pool:
        root = pool.submit(store.update_hashed, EMPTY_ROOT, pairs).result(timeout=60)
    assert root == reference_root(pairs)
    proof = store.prove_hashed(root, deepest)
    assert len(proof.siblings) == 256 and ZERO not in proof.siblings
    assert verify_state_proof_by_hash(root, deepest, H(b"bottom"), proof)
    # Remove every other tooth in one batch, then the rest: each step matches the oracle.
    odd = {kh: None for i, kh in enumerate(comb) if i % 2}
    root = store.update_hashed(root, odd)
    remaining = {kh: vh for kh, vh in pairs.items() if kh not in odd}
    assert root == reference_root(remaining)
    assert store.update_hashed(root, dict.fromkeys(remaining)) == EMPTY_ROOT


# --- the model test -------------------------------------------------------------------------

KEY_UNIVERSE = [f"k{i}".encode() for i in range(40)]
batches = st.lists(
    st.dictionaries(
        st.sampled_from(KEY_UNIVERSE), st.none() | st.binary(max_size=6), min_size=0, max_size=12
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch_list=batches)
def test_model_against_a_dict(shared_store: Store, batch_list: list[dict[bytes, Any]]) -> None:
    model: dict[bytes, bytes] = {}
    root = EMPTY_ROOT
    for changes in batch_list:
        root = shared_store.update(root, changes)
        for key, value in changes.items():
            if value is None:
                model.pop(key, None)
            else:
                model[key] = value
        assert root == reference_root_of_values(model)
        for key in KEY_UNIVERSE[::3]:
            expected = model.get(key)
            assert shared_store.get(root, key) == (None if expected is None else H(expected))
            assert verify_state_proof(root, key, expected, shared_store.prove(root, key))


# --- encoding, failures, robustness ---------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [],
        {"depth": 0, "bitmap": b"", "siblings": []},
        {"depth": 0, "bitmap": b"", "siblings": [], "leaf": None, "extra": 1},
        {"depth": -1, "bitmap": b"", "siblings": [], "leaf": None},
        {"depth": 257, "bitmap": bytes(33), "siblings": [], "leaf": None},
        {"depth": True, "bitmap": b"\x00", "siblings": [], "leaf": None},
        {"depth": 3, "bitmap": b"", "siblings": [], "leaf": None},
        {"depth": 3, "bitmap": b"\x10", "siblings": [b"\x01" * 32], "leaf": None},
        {"depth": 3, "bitmap": b"\x80", "siblings": [], "leaf": None},
        {"depth": 3, "bitmap": b"\x80", "siblings": [ZERO], "leaf": None},
        {"depth": 3, "bitmap": b"\x80", "siblings": [b"\x01" * 31], "leaf": None},
        {"depth": 1, "bitmap": b"\x80", "siblings": [b"\x01" * 32], "leaf": [b"\x02" * 32]},
        {"depth": 1, "bitmap": b"\x80", "siblings": [b"\x01" * 32], "leaf": "xx"},
    ],
)
def test_from_obj_refuses_what_to_obj_cannot_produce(bad: object) -> None:
    with pytest.raises(ValueError):
        StateProof.from_obj(bad)


def test_unknown_root_and_bad_arguments(store: Store) -> None:
    with pytest.raises(UnknownRootError), store.env.begin() as txn:
        store.tree.get_value_hash(txn, b"\x07" * 32, b"k")
    with pytest.raises(ValueError), store.env.begin() as txn:
        store.tree.prove(txn, b"short", b"k")
    with pytest.raises(TypeError):
        store.update(EMPTY_ROOT, {"text-key": b"v"})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        store.update(EMPTY_ROOT, {b"k": "text-value"})  # type: ignore[dict-item]
    with pytest.raises(ValueError):
        store.update_hashed(EMPTY_ROOT, {b"short": None})


def test_a_missing_node_is_reported_as_corruption(store: Store) -> None:
    root = store.update(EMPTY_ROOT, keyset(1, 50))
    with store.env.begin(write=True) as txn:
        victims = [k for k, v in txn.cursor(db=store.db) if k[:1] == b"\x02" and v[:1] == b"\x00"]
        txn.delete(victims[0], db=store.db)
    errors = 0
    for key in keyset(1, 50):
        try:
            store.get(root, key)
        except CorruptStateTreeError:
            errors += 1
    assert errors == 1


def test_an_aborted_transaction_leaves_no_root(store: Store) -> None:
    root = store.update(EMPTY_ROOT, {b"a": b"1", b"b": b"2"})
    with store.env.begin(write=True) as txn:
        lost = store.tree.update(txn, root, {b"c": b"3"})
        # Two updates in one transaction chain as expected.
        chained = store.tree.update(txn, lost, {b"d": b"4"})
        assert store.tree.get_value_hash(txn, chained, b"c") == H(b"3")
        txn.abort()
    with pytest.raises(UnknownRootError):
        store.get(lost, b"c")
    # The batch counter rolled back with the transaction, so appends still work.
    again = store.update(root, {b"c": b"3"})
    assert again == lost


junk = st.one_of(
    st.none(), st.integers(), st.text(max_size=3), st.binary(max_size=40), st.lists(st.binary())
)


@settings(max_examples=200, deadline=None)
@given(
    root=st.one_of(st.binary(min_size=32, max_size=32), junk),
    key=st.one_of(st.binary(max_size=8), junk),
    value=st.one_of(st.binary(max_size=8), junk),
    siblings=st.one_of(st.lists(st.binary(min_size=32, max_size=32), max_size=3), junk),
    other=st.one_of(st.tuples(st.binary(), st.binary()), junk),
)
def test_verify_never_raises(root: Any, key: Any, value: Any, siblings: Any, other: Any) -> None:
    proof = StateProof(siblings, other)
    assert verify_state_proof(root, key, value, proof) in (True, False)
    assert verify_state_proof(root, key, value, siblings) is False
