"""The state root of a whole key -> value map, computed from the definition alone.

The node's StateTree (statetree.py) updates the root incrementally from what it stored; this
is the direct recursion of the definition (docs/PROTOCOL.md, "The state tree"): an empty
subtree is ZERO, a subtree holding one key is that key's leaf at any depth, and a subtree
holding more is internal(left, right) split on the next bit of the key hashes. The offline
verifier uses it for the genesis state root (rule first-block), the tests to check the
StateTree against the definition and to make the published vectors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from hashlib import sha256

from node.ledger.statetree import KEY_BITS, ZERO, key_hash, leaf_hash, value_hash


def state_root(items: Mapping[bytes, bytes]) -> bytes:
    """The root over `items` (key -> canonical value bytes)."""
    hashed = sorted((key_hash(k), value_hash(v)) for k, v in items.items())
    return _subtree([(int.from_bytes(kh, "big"), kh, vh) for kh, vh in hashed], 0)


def _subtree(entries: Sequence[tuple[int, bytes, bytes]], depth: int) -> bytes:
    if not entries:
        return ZERO
    if len(entries) == 1:
        return leaf_hash(entries[0][1], entries[0][2])
    if depth >= KEY_BITS:  # two different keys with one hash: SHA-256 collided
        raise ValueError("two keys share a key hash")
    shift = KEY_BITS - 1 - depth
    left = [e for e in entries if not (e[0] >> shift) & 1]
    right = [e for e in entries if (e[0] >> shift) & 1]
    return sha256(b"\x01" + _subtree(left, depth + 1) + _subtree(right, depth + 1)).digest()
