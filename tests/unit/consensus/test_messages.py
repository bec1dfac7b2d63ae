"""Wire codec: every message round-trips; anything malformed is a MessageError."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus import (
    Checkpoint,
    CheckpointProof,
    Commit,
    CommitCertificate,
    CommitNotice,
    Message,
    MessageError,
    NewView,
    Prepare,
    PreparedCertificate,
    PrePrepare,
    ViewChange,
    decode_message,
    encode_message,
)

D = bytes(range(32))
SIG = b"s" * 64
CERT = CommitCertificate(7, 2, D, ((0, SIG), (2, SIG), (3, SIG)))
PREPARED = PreparedCertificate(8, 2, D, ((0, SIG), (1, SIG), (3, SIG)))
PROOF = CheckpointProof(5, D, ((0, SIG), (1, SIG), (2, SIG)))
VC = ViewChange(3, PROOF, CERT, PREPARED, b"payload", 1, SIG)

EXAMPLES: list[Message] = [
    PrePrepare(2, 8, D, b"block", CERT, 2, SIG),
    PrePrepare(0, 1, D, b"", None, 0, SIG),
    Prepare(2, 8, D, 1, SIG),
    Commit(2, 8, D, 3, SIG),
    Checkpoint(5, D, 0, SIG),
    VC,
    ViewChange(1, None, None, None, None, 0, SIG),
    NewView(3, (VC.without_payload(),), PrePrepare(3, 8, D, b"payload", CERT, 3, SIG), 3, SIG),
    NewView(3, (VC.without_payload(),), None, 3, SIG),
    CommitNotice(CERT, 0, SIG),
]


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(msg: Message) -> None:
    assert decode_message(encode_message(msg)) == msg


def _raw(msg: Message) -> list[object]:
    value = msgpack.unpackb(encode_message(msg), raw=False)
    assert isinstance(value, list)
    return value


def _encode(value: object) -> bytes:
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("mutate", "why"),
    [
        (lambda v: [v[0] + 1, *v[1:]], "wrong version"),
        (lambda v: [v[0], 99, *v[2:]], "unknown kind"),
        (lambda v: v[:-1], "missing field"),
        (lambda v: [*v, 1], "extra field"),
        (lambda v: [v[0], v[1], -1, *v[3:]], "negative view"),
        (lambda v: [v[0], v[1], True, *v[3:]], "bool as view"),
        (lambda v: [v[0], v[1], 1.5, *v[3:]], "float as view"),
        (lambda v: [v[0], v[1], v[2], v[3], b"short", *v[5:]], "short digest"),
        (lambda v: [v[0], v[1], v[2], v[3], "text", *v[5:]], "digest as str"),
        (lambda v: [*v[:5], 5000, v[6]], "sender out of range"),
        (lambda v: [*v[:6], b""], "empty signature"),
        (lambda v: [*v[:6], b"x" * 300], "huge signature"),
    ],
)
def test_malformed_prepare_rejected(mutate, why: str) -> None:  # type: ignore[no-untyped-def]
    value = mutate(_raw(Prepare(2, 8, D, 1, SIG)))
    with pytest.raises(MessageError):
        decode_message(_encode(value))


def test_certificate_signers_must_be_sorted_and_distinct() -> None:
    value = _raw(CommitNotice(CERT, 0, SIG))
    value[2][3] = [[2, SIG], [0, SIG]]
    with pytest.raises(MessageError):
        decode_message(_encode(value))
    value[2][3] = [[1, SIG], [1, SIG]]
    with pytest.raises(MessageError):
        decode_message(_encode(value))


def test_oversized_payload_rejected() -> None:
    data = encode_message(PrePrepare(0, 1, D, b"x" * 2000, None, 0, SIG))
    assert decode_message(data, max_payload_bytes=2000).payload == b"x" * 2000
    with pytest.raises(MessageError):
        decode_message(data, max_payload_bytes=1999)


def test_maps_and_deep_nesting_rejected() -> None:
    with pytest.raises(MessageError):
        decode_message(_encode({"kind": 1}))
    # [1, 2, [[[...]]]] nested 5000 deep, written by hand (msgpack refuses to pack it).
    deep = b"\x93\x01\x02" + b"\x91" * 5000 + b"\x90"
    with pytest.raises(MessageError):
        decode_message(deep)


def test_trailing_bytes_rejected() -> None:
    with pytest.raises(MessageError):
        decode_message(encode_message(EXAMPLES[2]) + b"\x00")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_ever_raise_message_error(data: bytes) -> None:
    try:
        decode_message(data)
    except MessageError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(EXAMPLES), st.data())
def test_truncated_and_bit_flipped_messages_never_crash(msg: Message, data: st.DataObject) -> None:
    encoded = bytearray(encode_message(msg))
    position = data.draw(st.integers(0, len(encoded) - 1))
    encoded[position] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(0, len(encoded)))
    for candidate in (bytes(encoded), bytes(encoded[:cut])):
        try:
            decoded = decode_message(candidate)
        except MessageError:
            continue
        assert decode_message(encode_message(decoded)) == decoded
