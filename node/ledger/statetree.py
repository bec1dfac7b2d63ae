"""Authenticated state: a sparse binary Merkle tree over SHA-256(key), path-compressed.

Hashing (the normative text is docs/PROTOCOL.md section 9; this is the same definition)
---------------------------------------------------------
H is SHA-256; || is concatenation; ZERO is 32 zero bytes.

    key_hash   = H(key)                 value_hash = H(value)
    leaf       = H(0x00 || key_hash || value_hash)
    internal   = H(0x01 || left || right)

A key lives on the path given by the 256 bits of its key_hash, most significant bit of
byte 0 first; bit 0 selects the left (0) or right (1) child of the root, and so on. The
hash of the subtree at any position of the conceptual depth-256 tree is

    ZERO                            when the subtree holds no key,
    leaf(key_hash, value_hash)      when it holds exactly one key, at any depth,
    internal(left, right)           when it holds two keys or more, where left and right
                                    are the hashes of its two child subtrees (ZERO for an
                                    empty child).

The root is the hash of the whole tree: ZERO when empty, the leaf hash when it holds one
key. This is the single-leaf rule of Diem's Jellyfish Merkle tree and of RFC 9162-style
sparse trees: a key sits as high as it is alone, so a write costs about log2(number of
keys) hashes. Where only one side of a subtree holds keys, the hash still climbs one level
at a time with ZERO as the other child, so a proof is nothing but a list of siblings.

Proofs
------
A proof for a key is the list of siblings met walking from the root down the key's path,
root side first, to a depth d where the walk ends in one of three ways:

    presence   the subtree at depth d is the key's own leaf;
    absence    the subtree at depth d is empty (ZERO), or is the single leaf of another
               key that shares the first d bits of key_hash (carried in the proof).

Verification starts from that leaf (or ZERO) and hashes upward, from level d-1 to level 0:
at level l, with h the running hash and s the sibling at level l, h = internal(h, s) when
bit l of key_hash is 0 and internal(s, h) when it is 1; the proof holds when the result is
the root. Encoded (StateProof.to_obj) the zero siblings are left out and marked in a bitmap.

Storage
-------
Nodes are immutable. Only leaves and branching nodes (both sides non-empty) are stored; the
single-child levels between them are implied by the branch's split depth and path prefix.
Every old root stays readable: nothing is pruned yet. Keys in the nodes database:

    b"\\x00version"       next batch number, 8 bytes big-endian
    b"\\x01" + root       the node reference of a non-empty root hash
    b"\\x02" + ref        a node record; ref = batch number (8 bytes) || hash (32 bytes),
                          the hash being the node's hash at the depth its parent refers
                          to it (depth 0 for the root)

The hash in every reference makes the store content-addressed; the batch number in front
makes the nodes of one block sort together, so a commit dirties a few fresh pages at the
end of the B-tree instead of one random page per node (measured: ~5 ms instead of ~150 ms
of commit per 12,000 nodes). Records:

    leaf     0x00 || key_hash || value_hash                               (65 bytes)
    branch   0x01 || split (1 byte) || left ref || right ref || prefix    (82 + ceil(split/8))

where split is the depth of the bit that separates the branch's keys and prefix is their
common first `split` bits, padded with zero bits to whole bytes.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

HASH_LEN = 32
KEY_BITS = 256
EMPTY_ROOT = bytes(HASH_LEN)
ZERO = EMPTY_ROOT

_LEAF_TAG = 0
_LEAF_PREFIX = b"\x00"
_INTERNAL_PREFIX = b"\x01"
_VERSION_KEY = b"\x00version"
_ROOT_PREFIX = b"\x01"
_NODE_PREFIX = b"\x02"
_VERSION_LEN = 8
_REF_LEN = _VERSION_LEN + HASH_LEN
_LEAF_RECORD_LEN = 1 + 2 * HASH_LEN
_BRANCH_FIXED_LEN = 2 + 2 * _REF_LEN

# A subtree during an update: (hash at `depth`, ref, record or None if not loaded, depth).
# Leaves carry depth -1: their hash and reference do not depend on where they hang.
_Sub = tuple[bytes, bytes, bytes | None, int]


class StateTreeError(Exception):
    """Base class of state tree failures."""


class UnknownRootError(StateTreeError, KeyError):
    """The root was never produced by this store (or belongs to another store)."""


class CorruptStateTreeError(StateTreeError):
    """A stored node is missing or malformed: the database is damaged."""


def key_hash(key: bytes) -> bytes:
    return sha256(key).digest()


def value_hash(value: bytes) -> bytes:
    return sha256(value).digest()


def leaf_hash(key_hash_value: bytes, value_hash_value: bytes) -> bytes:
    return sha256(_LEAF_PREFIX + key_hash_value + value_hash_value).digest()


def _bit(key_int: int, level: int) -> int:
    return (key_int >> (KEY_BITS - 1 - level)) & 1


def _prefix_of_record(record: bytes) -> int:
    prefix = record[_BRANCH_FIXED_LEN:]
    return int.from_bytes(prefix, "big") << (8 * (HASH_LEN - len(prefix)))


def _prefix_bytes(key_int: int, split: int) -> bytes:
    """The first `split` bits of key_int as stored in a branch record (zero-padded bytes)."""
    kept = (key_int >> (KEY_BITS - split)) << (KEY_BITS - split) if split else 0
    return kept.to_bytes(HASH_LEN, "big")[: (split + 7) // 8]


def _fold(node_hash: bytes, split: int, depth: int, prefix: int) -> bytes:
    """The hash at `depth` of a branch whose own hash (at depth `split`) is node_hash."""
    h = node_hash
    for level in range(split - 1, depth - 1, -1):
        if _bit(prefix, level):
            h = sha256(_INTERNAL_PREFIX + ZERO + h).digest()
        else:
            h = sha256(_INTERNAL_PREFIX + h + ZERO).digest()
    return h


def _check_record(record: bytes | None, ref: bytes) -> bytes:
    if record is None:
        raise CorruptStateTreeError(f"state node {ref.hex()} is missing")
    if len(record) == _LEAF_RECORD_LEN and record[0] == _LEAF_TAG:
        return record
    if (
        len(record) > 1
        and record[0] == 1
        and len(record) == _BRANCH_FIXED_LEN + (record[1] + 7) // 8
    ):
        return record
    raise CorruptStateTreeError(f"state node {ref.hex()} is malformed")


# --- proofs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StateProof:
    """Presence or absence of one key under one root; see the module docstring."""

    siblings: tuple[bytes, ...]
    """The sibling hash at each level from the root down; ZERO where that side is empty."""
    other_leaf: tuple[bytes, bytes] | None = None
    """(key_hash, value_hash) of the other key found where the key would be, if any."""

    def to_obj(self) -> dict[str, Any]:
        bitmap = bytearray((len(self.siblings) + 7) // 8)
        present: list[bytes] = []
        for level, sibling in enumerate(self.siblings):
            if sibling != ZERO:
                bitmap[level >> 3] |= 0x80 >> (level & 7)
                present.append(sibling)
        return {
            "depth": len(self.siblings),
            "bitmap": bytes(bitmap),
            "siblings": present,
            "leaf": None if self.other_leaf is None else list(self.other_leaf),
        }

    @classmethod
    def from_obj(cls, obj: object) -> StateProof:
        """Strict inverse of to_obj; raises ValueError for anything to_obj cannot produce."""
        if not isinstance(obj, dict) or set(obj) != {"depth", "bitmap", "siblings", "leaf"}:
            raise ValueError("state proof must be a map with depth, bitmap, siblings, leaf")
        depth, bitmap, present, leaf = obj["depth"], obj["bitmap"], obj["siblings"], obj["leaf"]
        if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth <= KEY_BITS:
            raise ValueError(f"state proof depth must be an int in [0, {KEY_BITS}]")
        if not isinstance(bitmap, bytes) or len(bitmap) != (depth + 7) // 8:
            raise ValueError("state proof bitmap has the wrong length")
        if depth % 8 and bitmap[-1] & (0xFF >> (depth % 8)):
            raise ValueError("state proof bitmap has bits set past its depth")
        if not isinstance(present, list) or not all(
            isinstance(s, bytes) and len(s) == HASH_LEN and s != ZERO for s in present
        ):
            raise ValueError("state proof siblings must be non-zero 32-byte hashes")
        if sum(bin(b).count("1") for b in bitmap) != len(present):
            raise ValueError("state proof bitmap does not match its sibling count")
        other_leaf: tuple[bytes, bytes] | None = None
        if leaf is not None:
            if not (
                isinstance(leaf, list)
                and len(leaf) == 2
                and all(isinstance(h, bytes) and len(h) == HASH_LEN for h in leaf)
            ):
                raise ValueError("state proof leaf must be [key_hash, value_hash]")
            other_leaf = (leaf[0], leaf[1])
        remaining = iter(present)
        siblings = tuple(
            next(remaining) if bitmap[level >> 3] & (0x80 >> (level & 7)) else ZERO
            for level in range(depth)
        )
        return cls(siblings, other_leaf)


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_LEN


def verify_state_proof_by_hash(
    root: bytes, key_hash_value: bytes, value_hash_value: bytes | None, proof: StateProof
) -> bool:
    """verify_state_proof for callers that hold hashes; value_hash None = prove absence."""
    if not (_is_hash(root) and _is_hash(key_hash_value) and isinstance(proof, StateProof)):
        return False
    siblings, other = proof.siblings, proof.other_leaf
    if not isinstance(siblings, tuple | list) or len(siblings) > KEY_BITS:
        return False
    if not all(_is_hash(s) for s in siblings):
        return False
    key_int = int.from_bytes(key_hash_value, "big")
    depth = len(siblings)
    if value_hash_value is not None:
        if not _is_hash(value_hash_value) or other is not None:
            return False
        h = leaf_hash(key_hash_value, value_hash_value)
    elif other is None:
        h = ZERO
    else:
        if not (isinstance(other, tuple) and len(other) == 2 and all(map(_is_hash, other))):
            return False
        other_int = int.from_bytes(other[0], "big")
        # The other key must differ and must sit on this key's path down to `depth`.
        if other_int == key_int or KEY_BITS - (other_int ^ key_int).bit_length() < depth:
            return False
        h = leaf_hash(other[0], other[1])
    for level in range(depth - 1, -1, -1):
        if _bit(key_int, level):
            h = sha256(_INTERNAL_PREFIX + siblings[level] + h).digest()
        else:
            h = sha256(_INTERNAL_PREFIX + h + siblings[level]).digest()
    return h == root


def verify_state_proof(root: bytes, key: bytes, value: bytes | None, proof: StateProof) -> bool:
    """True when proof shows key -> value under root (value None: key absent). Never raises."""
    if not isinstance(key, bytes) or not (value is None or isinstance(value, bytes)):
        return False
    return verify_state_proof_by_hash(
        root, key_hash(key), None if value is None else value_hash(value), proof
    )


# --- the tree -----------------------------------------------------------------------------


@dataclass(frozen=True)
class UpdateStats:
    hashes: int
    nodes_read: int
    nodes_written: int


class StateTree:
    """The state tree over one LMDB sub-database; holds no state between calls.

    Every method takes the caller's LMDB transaction (a write transaction for update), so
    the tree's nodes commit or abort together with the block that produced them. The
    sub-database must hold nothing but this tree: update appends past its last key.
    """

    def __init__(self, nodes_db: Any) -> None:
        self._db = nodes_db

    def update(self, txn: Any, root: bytes, changes: Mapping[bytes, bytes | None]) -> bytes:
        """Apply one block's changes (value None = delete) to root; return the new root."""
        return self.update_with_stats(txn, root, changes)[0]

    def update_with_stats(
        self, txn: Any, root: bytes, changes: Mapping[bytes, bytes | None]
    ) -> tuple[bytes, UpdateStats]:
        """update() that also counts the hashes computed and the nodes read and written."""
        hashed: dict[bytes, bytes | None] = {}
        for key, value in changes.items():
            if not isinstance(key, bytes):
                raise TypeError(f"state key must be bytes, got {type(key).__name__}")
            if value is not None and not isinstance(value, bytes):
                raise TypeError(f"state value must be bytes or None, got {type(value).__name__}")
            hashed[sha256(key).digest()] = None if value is None else sha256(value).digest()
        return self._update(txn, root, hashed, 2 * len(hashed))

    def update_hashed(self, txn: Any, root: bytes, changes: Mapping[bytes, bytes | None]) -> bytes:
        """update() with the changes given as key_hash -> value_hash (None = delete)."""
        for kh, vh in changes.items():
            if not _is_hash(kh) or not (vh is None or _is_hash(vh)):
                raise ValueError("hashed changes must map 32-byte hashes to 32-byte hashes")
        return self._update(txn, root, changes, 0)[0]

    def _update(
        self, txn: Any, root: bytes, changes: Mapping[bytes, bytes | None], hashes_before: int
    ) -> tuple[bytes, UpdateStats]:
        start = self._resolve_root(txn, root)
        if not changes:
            return root, UpdateStats(hashes_before, 0, 0)
        stored_version = txn.get(_VERSION_KEY, db=self._db)
        version = 1 if stored_version is None else int.from_bytes(stored_version, "big")
        batch = _Batch(txn, self._db, version, changes)
        new_sub = batch.apply(start, 0, 0, len(batch.keys))
        # Sorted, and above every key written before (the batch number only grows), so
        # LMDB appends them to its last pages.
        writes = batch.writes
        records = [(_NODE_PREFIX + ref, writes[ref]) for ref in sorted(writes)]
        _, added = txn.cursor(db=self._db).putmulti(records, append=True)
        if added != len(records):
            raise CorruptStateTreeError("state node keys out of order: bad batch counter")
        if batch.writes:
            txn.put(_VERSION_KEY, (version + 1).to_bytes(_VERSION_LEN, "big"), db=self._db)
        stats = UpdateStats(batch.hashes + hashes_before, batch.reads, len(batch.writes))
        if new_sub is None:
            return ZERO, stats
        new_root, new_ref = new_sub[0], new_sub[1]
        if txn.get(_ROOT_PREFIX + new_root, db=self._db) is None:
            txn.put(_ROOT_PREFIX + new_root, new_ref, db=self._db)
        return new_root, stats

    def get_value_hash(self, txn: Any, root: bytes, key: bytes) -> bytes | None:
        """The value_hash stored for key under root, or None when the key is absent."""
        return self.get_value_hash_hashed(txn, root, key_hash(key))

    def get_value_hash_hashed(self, txn: Any, root: bytes, key_hash_value: bytes) -> bytes | None:
        leaf = self._walk(txn, root, key_hash_value, None)
        if leaf is not None and leaf[0] == key_hash_value:
            return leaf[1]
        return None

    def prove(self, txn: Any, root: bytes, key: bytes) -> StateProof:
        """A presence proof if key is set under root, else an absence proof."""
        return self.prove_hashed(txn, root, key_hash(key))

    def prove_hashed(self, txn: Any, root: bytes, key_hash_value: bytes) -> StateProof:
        siblings: list[bytes] = []
        leaf = self._walk(txn, root, key_hash_value, siblings)
        other = None if leaf is None or leaf[0] == key_hash_value else leaf
        return StateProof(tuple(siblings), other)

    def _resolve_root(self, txn: Any, root: bytes) -> _Sub | None:
        if not _is_hash(root):
            raise ValueError("a state root is 32 bytes")
        if root == ZERO:
            return None
        ref = txn.get(_ROOT_PREFIX + root, db=self._db)
        if ref is None:
            raise UnknownRootError(root.hex())
        return (root, bytes(ref), None, 0)

    def _walk(
        self, txn: Any, root: bytes, kh: bytes, siblings: list[bytes] | None
    ) -> tuple[bytes, bytes] | None:
        """Follow kh down from root; return the (key_hash, value_hash) of the leaf where the
        walk ends, or None when it ends in an empty subtree. Appends siblings if given."""
        if not _is_hash(kh):
            raise ValueError("a key hash is 32 bytes")
        start = self._resolve_root(txn, root)
        if start is None:
            return None
        key_int = int.from_bytes(kh, "big")
        ref, depth = start[1], 0
        for _ in range(KEY_BITS + 1):  # each step goes at least one level down
            record = _check_record(txn.get(_NODE_PREFIX + ref, db=self._db), ref)
            if record[0] == _LEAF_TAG:
                return record[1:33], record[33:65]
            split = record[1]
            prefix = _prefix_of_record(record)
            if split < depth:
                raise CorruptStateTreeError(f"state node {ref.hex()} splits above its parent")
            if (key_int ^ prefix) >> (KEY_BITS - split):
                # The key leaves this branch's common prefix at level `diverge`: the subtree
                # on the key's side there is empty, the other side is this whole branch.
                if siblings is not None:
                    diverge = KEY_BITS - (key_int ^ prefix).bit_length()
                    siblings.extend([ZERO] * (diverge - depth))
                    own = sha256(_INTERNAL_PREFIX + record[10:42] + record[50:82]).digest()
                    siblings.append(_fold(own, split, diverge + 1, prefix))
                return None
            left, right = record[2:42], record[42:82]
            child, other = (right, left) if _bit(key_int, split) else (left, right)
            if siblings is not None:
                siblings.extend([ZERO] * (split - depth))
                siblings.append(other[_VERSION_LEN:])
            ref, depth = child, split + 1
        raise CorruptStateTreeError("state tree deeper than 256 levels")


class _Batch:
    """One update: the sorted changes, the nodes written so far and counters."""

    __slots__ = ("db", "hashes", "keys", "known_leaves", "reads", "txn", "version", "vhs", "writes")

    def __init__(
        self, txn: Any, db: Any, version: int, changes: Mapping[bytes, bytes | None]
    ) -> None:
        self.txn = txn
        self.db = db
        self.version = version.to_bytes(_VERSION_LEN, "big")
        ordered = sorted(changes.items())
        self.keys = [int.from_bytes(kh, "big") for kh, _ in ordered]
        self.vhs = [vh for _, vh in ordered]
        self.writes: dict[bytes, bytes] = {}
        # Leaves that already exist, so rebuilding around them reuses their references.
        self.known_leaves: dict[bytes, bytes] = {}
        self.hashes = 0
        self.reads = 0

    def load(self, ref: bytes) -> bytes:
        self.reads += 1
        return _check_record(self.txn.get(_NODE_PREFIX + ref, db=self.db), ref)

    def apply(self, sub: _Sub | None, depth: int, lo: int, hi: int) -> _Sub | None:
        """Apply changes[lo:hi] (all under this subtree's path) to sub, keyed at depth."""
        if depth > KEY_BITS:
            raise CorruptStateTreeError("state tree deeper than 256 levels")
        if lo == hi:
            return None if sub is None else self.at(sub, depth)
        if sub is None:
            return self.build_inserts(depth, lo, hi)
        record = sub[2] if sub[2] is not None else self.load(sub[1])
        if record[0] == _LEAF_TAG:
            return self.apply_to_leaf(sub, record, depth, lo, hi)
        return self.apply_to_branch(sub, record, depth, lo, hi)

    def apply_to_leaf(self, sub: _Sub, record: bytes, depth: int, lo: int, hi: int) -> _Sub | None:
        old_key = int.from_bytes(record[1:33], "big")
        keys, vhs = self.keys, self.vhs
        at = bisect_left(keys, old_key, lo, hi)
        replaced = at < hi and keys[at] == old_key
        if replaced and hi - lo == 1 and vhs[at] is not None and vhs[at] == record[33:65]:
            return (sub[0], sub[1], record, -1)  # rewritten with the same value
        self.known_leaves[sub[0]] = sub[1]
        merged_keys: list[int] = []
        merged_vhs: list[bytes] = []
        for i in range(lo, hi):
            if not replaced and i == at:
                merged_keys.append(old_key)
                merged_vhs.append(record[33:65])
            vh = vhs[i]
            if vh is not None:
                merged_keys.append(keys[i])
                merged_vhs.append(vh)
        if not replaced and at == hi:
            merged_keys.append(old_key)
            merged_vhs.append(record[33:65])
        if not merged_keys:
            return None
        return self.build(depth, merged_keys, merged_vhs, 0, len(merged_keys))

    def apply_to_branch(
        self, sub: _Sub, record: bytes, depth: int, lo: int, hi: int
    ) -> _Sub | None:
        keys, vhs = self.keys, self.vhs
        split = record[1]
        match_lo, match_hi = lo, hi
        # When split == depth every change here is under the branch's prefix already (the
        # common case in a random tree); otherwise some may leave it on the way down.
        if split != depth:
            prefix = _prefix_of_record(record)
            match_lo = bisect_left(keys, prefix, lo, hi)
            match_hi = bisect_left(keys, prefix + (1 << (KEY_BITS - split)), match_lo, hi)
            # Deletes outside the prefix are of absent keys (no-ops); inserts there make a
            # new branch above this one, at the highest level where they leave the prefix.
            # Keys are sorted, so the outermost insert on each side decides it.
            diverge = KEY_BITS
            for i in range(lo, match_lo):
                if vhs[i] is not None:
                    diverge = KEY_BITS - (keys[i] ^ prefix).bit_length()
                    break
            for i in range(hi - 1, match_hi - 1, -1):
                if vhs[i] is not None:
                    diverge = min(diverge, KEY_BITS - (keys[i] ^ prefix).bit_length())
                    break
            if diverge < KEY_BITS:
                return self.split_above(sub, record, depth, diverge, prefix, lo, hi)
        if match_lo == match_hi:
            return self.at(sub, depth)
        # The first key at or past the branch's right half: its prefix, then a 1 at split.
        shift = KEY_BITS - 1 - split
        mid = bisect_left(keys, ((keys[match_lo] >> shift) | 1) << shift, match_lo, match_hi)
        old_left, old_right = record[2:42], record[42:82]
        left_sub: _Sub = (old_left[_VERSION_LEN:], old_left, None, split + 1)
        right_sub: _Sub = (old_right[_VERSION_LEN:], old_right, None, split + 1)
        new_left = self.apply(left_sub, split + 1, match_lo, mid)
        new_right = self.apply(right_sub, split + 1, mid, match_hi)
        if (
            new_left is not None
            and new_right is not None
            and new_left[1] == old_left
            and new_right[1] == old_right
        ):
            return self.at(sub, depth)
        return self.join(depth, split, record[_BRANCH_FIXED_LEN:], new_left, new_right)

    def split_above(
        self, sub: _Sub, record: bytes, depth: int, diverge: int, prefix: int, lo: int, hi: int
    ) -> _Sub | None:
        keys = self.keys
        side = _bit(prefix, diverge)
        half = 1 << (KEY_BITS - 1 - diverge)
        base = (prefix >> (KEY_BITS - diverge)) << (KEY_BITS - diverge) if diverge else 0
        own_lo = bisect_left(keys, base + side * half, lo, hi)
        own_hi = bisect_left(keys, base + side * half + half, own_lo, hi)
        new_lo = bisect_left(keys, base + (1 - side) * half, lo, hi)
        new_hi = bisect_left(keys, base + (1 - side) * half + half, new_lo, hi)
        own_side = self.apply_to_branch(sub, record, diverge + 1, own_lo, own_hi)
        new_side = self.build_inserts(diverge + 1, new_lo, new_hi)
        base_bytes = _prefix_bytes(base, diverge)
        if side:
            return self.join(depth, diverge, base_bytes, new_side, own_side)
        return self.join(depth, diverge, base_bytes, own_side, new_side)

    def build_inserts(self, depth: int, lo: int, hi: int) -> _Sub | None:
        """A fresh subtree from the inserts in changes[lo:hi] (deletes there are no-ops)."""
        inserted_keys: list[int] = []
        inserted_vhs: list[bytes] = []
        for i in range(lo, hi):
            vh = self.vhs[i]
            if vh is not None:
                inserted_keys.append(self.keys[i])
                inserted_vhs.append(vh)
        return self.build(depth, inserted_keys, inserted_vhs, 0, len(inserted_keys))

    def build(
        self, depth: int, keys: Sequence[int], vhs: Sequence[bytes], lo: int, hi: int
    ) -> _Sub | None:
        """A fresh subtree holding keys[lo:hi] (sorted, distinct) with values vhs[lo:hi]."""
        if lo == hi:
            return None
        if hi - lo == 1:
            return self.new_leaf(keys[lo].to_bytes(HASH_LEN, "big"), vhs[lo])
        first = keys[lo]
        split = KEY_BITS - (first ^ keys[hi - 1]).bit_length()
        if not depth <= split < KEY_BITS:
            raise CorruptStateTreeError("keys outside their subtree or duplicated")
        shift = KEY_BITS - 1 - split
        mid = bisect_left(keys, ((first >> shift) | 1) << shift, lo, hi)
        left = self.build(split + 1, keys, vhs, lo, mid)
        right = self.build(split + 1, keys, vhs, mid, hi)
        return self.join(depth, split, _prefix_bytes(first, split), left, right)

    def new_leaf(self, kh: bytes, vh: bytes) -> _Sub:
        record = _LEAF_PREFIX + kh + vh
        h = sha256(record).digest()
        self.hashes += 1
        ref = self.known_leaves.get(h)
        if ref is None:
            ref = self.version + h
            self.writes[ref] = record
        return (h, ref, record, -1)

    def join(
        self, depth: int, split: int, prefix: bytes, left: _Sub | None, right: _Sub | None
    ) -> _Sub | None:
        """The subtree at depth whose keys share `prefix` (split bits, as stored) and
        separate at level `split` into left and right."""
        if left is None:
            return None if right is None else self.at(right, depth)
        if right is None:
            return self.at(left, depth)
        child_depth = split + 1
        if left[3] != child_depth and left[3] != -1:
            left = self.at(left, child_depth)
        if right[3] != child_depth and right[3] != -1:
            right = self.at(right, child_depth)
        record = b"\x01" + bytes((split,)) + left[1] + right[1] + prefix
        h = sha256(_INTERNAL_PREFIX + left[0] + right[0]).digest()
        if split != depth:
            h = _fold(h, split, depth, _prefix_of_record(record))
        self.hashes += 1 + split - depth
        ref = self.version + h
        self.writes[ref] = record
        return (h, ref, record, depth)

    def at(self, sub: _Sub, depth: int) -> _Sub:
        """sub as referred to from depth: branches get a new hash and reference when moved."""
        if sub[3] == depth or sub[3] == -1:
            return sub
        record = sub[2] if sub[2] is not None else self.load(sub[1])
        if record[0] == _LEAF_TAG:
            return (sub[0], sub[1], record, -1)
        split = record[1]
        if depth > split:
            raise CorruptStateTreeError("branch moved below its own split level")
        # A branch made earlier in this batch and moved now was never referred to: drop it.
        self.writes.pop(sub[1], None)
        own = sha256(_INTERNAL_PREFIX + record[10:42] + record[50:82]).digest()
        h = _fold(own, split, depth, _prefix_of_record(record))
        self.hashes += 1 + split - depth
        ref = self.version + h
        self.writes[ref] = record
        return (h, ref, record, depth)
