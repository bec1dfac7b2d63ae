"""RFC 6962 (Certificate Transparency) Merkle trees over a list of leaves.

Hashing is exactly RFC 6962 section 2.1 (kept unchanged by RFC 9162 section 2.1.1):

    empty tree      MTH({})   = SHA-256("")
    leaf            MTH({d})  = SHA-256(0x00 || d)
    n > 1 leaves    MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])),
                    k = the largest power of two smaller than n

so a block's transaction root and its inclusion proofs can be checked by any CT-style
verifier. The recursive definition equals "hash pairs level by level and carry an odd last
node up unchanged", which is what merkle_root does: no recursion, O(n) hashes, fast on the
~10,000-leaf lists a block holds.

An inclusion proof binds a leaf to a (root, tree_size) pair, but the root alone does not bind
the size: a proof can verify under several sizes whose paths have the same shape (index 0 of
sizes 3 and 4, for example). Take tree_size from an authenticated source (the block header),
never from the party that hands you the proof.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_LEN = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def merkle_root_from_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """The RFC 6962 root of leaves given by their leaf hashes (leaf_hash(data) each)."""
    if not leaf_hashes:
        return EMPTY_ROOT
    sha256 = hashlib.sha256
    level = list(leaf_hashes)
    # Each pass halves the level, so this runs ceil(log2(n)) times.
    while len(level) > 1:
        paired_count = len(level) & ~1
        next_level = [
            sha256(_NODE_PREFIX + level[i] + level[i + 1]).digest()
            for i in range(0, paired_count, 2)
        ]
        if paired_count != len(level):
            next_level.append(level[-1])  # the odd last node is carried up unchanged
        level = next_level
    return level[0]


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf DATA (each leaf is hashed with leaf_hash); empty list = SHA-256(b"")."""
    sha256 = hashlib.sha256
    return merkle_root_from_hashes([sha256(_LEAF_PREFIX + data).digest() for data in leaves])


def inclusion_proof_from_hashes(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 6962 PATH(index, D[n]) for leaves given by their leaf hashes, leaf side first."""
    size = len(leaf_hashes)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < size:
        raise IndexError(f"leaf index {index!r} outside a tree of {size} leaves")
    sha256 = hashlib.sha256
    proof: list[bytes] = []
    level = list(leaf_hashes)
    position = index
    while len(level) > 1:
        sibling = position ^ 1
        # No sibling means this node is the odd last one: RFC 6962 carries it up and the
        # path gets no element at this level.
        if sibling < len(level):
            proof.append(level[sibling])
        paired_count = len(level) & ~1
        next_level = [
            sha256(_NODE_PREFIX + level[i] + level[i + 1]).digest()
            for i in range(0, paired_count, 2)
        ]
        if paired_count != len(level):
            next_level.append(level[-1])
        level = next_level
        position >>= 1
    return proof


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 6962 PATH(index, D[n]) over leaf DATA; raises IndexError outside [0, n)."""
    sha256 = hashlib.sha256
    return inclusion_proof_from_hashes(
        [sha256(_LEAF_PREFIX + data).digest() for data in leaves], index
    )


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_LEN


def verify_inclusion_by_hash(
    leaf_hash_value: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 section 2.1.3.2 with the leaf given by its hash; False on any bad input."""
    if isinstance(index, bool) or isinstance(tree_size, bool):
        return False
    if not isinstance(index, int) or not isinstance(tree_size, int):
        return False
    if not 0 <= index < tree_size or not _is_hash(root) or not _is_hash(leaf_hash_value):
        return False
    if isinstance(proof, bytes | str) or not isinstance(proof, Sequence):
        return False
    # A path never has more elements than the tree has levels.
    if len(proof) > tree_size.bit_length():
        return False
    sha256 = hashlib.sha256
    fn = index
    sn = tree_size - 1
    r = leaf_hash_value
    for p in proof:
        if not _is_hash(p) or sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = sha256(_NODE_PREFIX + p + r).digest()
            # Skip the levels where this node was the odd last one and was carried up.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = sha256(_NODE_PREFIX + r + p).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_inclusion(
    leaf_data: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """True when proof shows leaf_data at index in the tree of tree_size leaves with root.

    RFC 9162 section 2.1.3.2. Never raises: malformed input gives False.
    """
    if not isinstance(leaf_data, bytes):
        return False
    return verify_inclusion_by_hash(leaf_hash(leaf_data), index, tree_size, proof, root)
