"""RFC 6962 Merkle trees against the Certificate Transparency reference vectors.

The 8-leaf reference tree, its roots for sizes 1..8 and the inclusion paths come from the
CT code bases: transparency-dev/merkle, proof/verify_test.go (variables `leaves`, `roots`,
`inclusionProofs`; the same data as certificate-transparency-go merkletree tests and the
C++ merkle_tree_test.cc). In that file leaf numbers are 1-based; here indexes are 0-based.
The corruption list mirrors corruptInclusionProof() in the same file.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.ledger.merkle import (
    EMPTY_ROOT,
    inclusion_proof,
    inclusion_proof_from_hashes,
    leaf_hash,
    merkle_root,
    merkle_root_from_hashes,
    node_hash,
    verify_inclusion,
    verify_inclusion_by_hash,
)

CT_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]

# CT_ROOTS[n] is the root of the first n reference leaves.
CT_ROOTS = [
    bytes.fromhex(h)
    for h in [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]

# (0-based leaf index, tree size, RFC 6962 PATH)
CT_INCLUSION = [
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]

SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


# --- a literal transcription of the RFC 6962 recursive definitions, as an oracle ---------


def _split_point(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def reference_mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = _split_point(len(leaves))
    return hashlib.sha256(b"\x01" + reference_mth(leaves[:k]) + reference_mth(leaves[k:])).digest()


def reference_path(m: int, leaves: list[bytes]) -> list[tuple[str, bytes]]:
    """PATH(m, D[n]) with each element tagged by the side its sibling sits on."""
    n = len(leaves)
    if n == 1:
        return []
    k = _split_point(n)
    if m < k:
        return [*reference_path(m, leaves[:k]), ("right", reference_mth(leaves[k:]))]
    return [*reference_path(m - k, leaves[k:]), ("left", reference_mth(leaves[:k]))]


def path_shape(m: int, n: int) -> list[str]:
    return [side for side, _ in reference_path(m, [b""] * n)]


# --- reference vectors -------------------------------------------------------------------


def test_primitives_match_rfc_prefixes() -> None:
    assert leaf_hash(b"") == CT_ROOTS[1]
    assert node_hash(CT_ROOTS[1], leaf_hash(b"\x00")) == CT_ROOTS[2]
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT


@pytest.mark.parametrize("size", range(9))
def test_roots_match_ct_reference_tree(size: int) -> None:
    assert merkle_root(CT_LEAVES[:size]) == CT_ROOTS[size]
    assert merkle_root_from_hashes([leaf_hash(d) for d in CT_LEAVES[:size]]) == CT_ROOTS[size]


@pytest.mark.parametrize(("index", "size", "path_hex"), CT_INCLUSION)
def test_inclusion_paths_match_ct_vectors(index: int, size: int, path_hex: list[str]) -> None:
    expected = [bytes.fromhex(h) for h in path_hex]
    assert inclusion_proof(CT_LEAVES[:size], index) == expected
    assert verify_inclusion(CT_LEAVES[index], index, size, expected, CT_ROOTS[size])


def _corruptions(
    index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes
) -> list[tuple[str, bytes, int, int, list[bytes], bytes]]:
    """(description, leaf hash, index, size, proof, root), as corruptInclusionProof."""
    probes = [
        ("index - 1", leaf, index - 1, size, proof, root),
        ("index + 1", leaf, index + 1, size, proof, root),
        ("index ^ 2", leaf, index ^ 2, size, proof, root),
        ("size * 2", leaf, index, size * 2, proof, root),
        ("size // 2", leaf, index, size // 2, proof, root),
        ("wrong leaf", leaf_hash(b"WrongLeaf"), index, size, proof, root),
        ("empty root", leaf, index, size, proof, EMPTY_ROOT),
        ("random root", leaf, index, size, proof, SOME_HASH),
        ("trailing garbage", leaf, index, size, [*proof, b""], root),
        ("trailing root", leaf, index, size, [*proof, root], root),
        ("preceding garbage", leaf, index, size, [b"", *proof], root),
        ("preceding root", leaf, index, size, [root, *proof], root),
    ]
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
        probes.append((f"proof[{i}] bit 3 flipped", leaf, index, size, flipped, root))
    if proof:
        probes.append(("removed component", leaf, index, size, proof[:-1], root))
    if len(proof) > 1:
        probes.append(
            ("inserted component", leaf, index, size, [proof[0], SOME_HASH, *proof[1:]], root)
        )
    return probes


@pytest.mark.parametrize(("index", "size", "path_hex"), CT_INCLUSION)
def test_ct_corruptions_are_refused(index: int, size: int, path_hex: list[str]) -> None:
    proof = [bytes.fromhex(h) for h in path_hex]
    leaf = leaf_hash(CT_LEAVES[index])
    accepted = [
        desc
        for desc, lh, i, n, p, r in _corruptions(index, size, proof, CT_ROOTS[size], leaf)
        if verify_inclusion_by_hash(lh, i, n, p, r)
    ]
    assert accepted == []


def test_single_leaf_tree_has_empty_proof() -> None:
    root = merkle_root([b"data"])
    assert root == leaf_hash(b"data")
    assert inclusion_proof([b"data"], 0) == []
    assert verify_inclusion(b"data", 0, 1, [], root)
    assert not verify_inclusion(b"data", 0, 1, [], b"")
    assert not verify_inclusion(b"other", 0, 1, [], root)


@pytest.mark.parametrize(("index", "size"), [(0, 0), (0, 1), (1, 0), (2, 1)])
def test_ct_degenerate_probes_are_refused(index: int, size: int) -> None:
    # TestVerifyInclusion in verify_test.go: an empty proof with bad roots or leaves.
    assert not verify_inclusion_by_hash(SOME_HASH, index, size, [], b"")
    assert not verify_inclusion_by_hash(b"", index, size, [], EMPTY_ROOT)
    assert not verify_inclusion_by_hash(SOME_HASH, index, size, [], EMPTY_ROOT)


def test_generation_matches_the_rfc_definition_for_every_small_tree() -> None:
    for size in range(1, 70):
        leaves = [i.to_bytes(2, "big") for i in range(size)]
        root = merkle_root(leaves)
        assert root == reference_mth(leaves)
        for index in range(size):
            proof = inclusion_proof(leaves, index)
            assert proof == [h for _, h in reference_path(index, leaves)]
            assert verify_inclusion(leaves[index], index, size, proof, root)


def test_root_of_a_full_block_matches_the_rfc_definition() -> None:
    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(10_000)]
    assert merkle_root(leaves) == reference_mth(leaves)
    proof = inclusion_proof(leaves, 9_999)
    assert verify_inclusion(leaves[9_999], 9_999, 10_000, proof, merkle_root(leaves))


def test_root_does_not_bind_the_tree_size() -> None:
    # Documented limitation of RFC 6962 inclusion proofs: index 0 has the same path shape
    # in trees of 3 and 4 leaves, so a size-3 proof also verifies when size 4 is claimed.
    # Callers must take tree_size from the authenticated block header.
    leaves = CT_LEAVES[:3]
    proof = inclusion_proof(leaves, 0)
    assert verify_inclusion(leaves[0], 0, 4, proof, CT_ROOTS[3])
    assert not verify_inclusion(leaves[0], 0, 5, proof, CT_ROOTS[3])


@pytest.mark.parametrize(
    "bad",
    [
        {"leaf_data": "text"},
        {"index": True},
        {"index": 1.0},
        {"tree_size": None},
        {"proof": b"\x00" * 32},
        {"proof": [None]},
        {"proof": [b"\x00" * 31]},
        {"proof": [b"\x00" * 32] * 1000},
        {"root": None},
        {"root": "00" * 32},
        {"index": -1},
        {"index": 2**70},
    ],
)
def test_malformed_input_is_refused_without_raising(bad: dict[str, object]) -> None:
    leaves = CT_LEAVES[:5]
    args: dict[str, object] = {
        "leaf_data": leaves[1],
        "index": 1,
        "tree_size": 5,
        "proof": inclusion_proof(leaves, 1),
        "root": CT_ROOTS[5],
    }
    assert verify_inclusion(**args)  # type: ignore[arg-type]
    args.update(bad)
    assert not verify_inclusion(**args)  # type: ignore[arg-type]


def test_proof_index_out_of_range_raises() -> None:
    with pytest.raises(IndexError):
        inclusion_proof([b"a", b"b"], 2)
    with pytest.raises(IndexError):
        inclusion_proof_from_hashes([], 0)


# --- properties ---------------------------------------------------------------------------

# Unique leaves: with two equal leaves a proof legitimately verifies at either index.
leaf_lists = st.lists(st.binary(max_size=40), min_size=1, max_size=150, unique=True)


@settings(max_examples=60, deadline=None)
@given(leaves=leaf_lists)
def test_every_index_of_a_random_tree_verifies(leaves: list[bytes]) -> None:
    root = merkle_root(leaves)
    assert root == reference_mth(leaves)
    for index in range(len(leaves)):
        proof = inclusion_proof(leaves, index)
        assert verify_inclusion(leaves[index], index, len(leaves), proof, root)


@settings(max_examples=150, deadline=None)
@given(leaves=leaf_lists, data=st.data())
def test_tampering_is_refused(leaves: list[bytes], data: st.DataObject) -> None:
    size = len(leaves)
    index = data.draw(st.integers(0, size - 1), label="index")
    root = merkle_root(leaves)
    proof = inclusion_proof(leaves, index)

    if proof:
        element = data.draw(st.integers(0, len(proof) - 1), label="element")
        byte_at = data.draw(st.integers(0, 31), label="byte")
        mask = data.draw(st.integers(1, 255), label="mask")
        flipped = list(proof)
        flipped[element] = (
            proof[element][:byte_at]
            + bytes([proof[element][byte_at] ^ mask])
            + proof[element][byte_at + 1 :]
        )
        assert not verify_inclusion(leaves[index], index, size, flipped, root)

    root_byte = data.draw(st.integers(0, 31), label="root byte")
    bad_root = root[:root_byte] + bytes([root[root_byte] ^ 1]) + root[root_byte + 1 :]
    assert not verify_inclusion(leaves[index], index, size, proof, bad_root)
    assert not verify_inclusion(leaves[index] + b"x", index, size, proof, root)

    if size > 1:
        wrong_index = data.draw(st.integers(0, size - 2), label="wrong index")
        wrong_index += wrong_index >= index  # skip the true index
        assert not verify_inclusion(leaves[index], wrong_index, size, proof, root)

    # A wrong size verifies exactly when its path has the same shape (see the test above);
    # any other wrong size must fail.
    wrong_size = data.draw(st.integers(index + 1, 2 * size + 2).filter(lambda n: n != size))
    same_shape = path_shape(index, wrong_size) == path_shape(index, size)
    assert verify_inclusion(leaves[index], index, wrong_size, proof, root) == same_shape
