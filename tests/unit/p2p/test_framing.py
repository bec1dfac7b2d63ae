"""The frame codec: edge cases by hand, then round trips and hostile bytes by hypothesis."""

from __future__ import annotations

import itertools
import struct
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2p.framing import (
    DEFAULT_MAX_FRAME_BYTES,
    HEADER_BYTES,
    FrameDecoder,
    FrameError,
    encode_frame,
)


def frame_of_payload(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def test_round_trip_of_one_message() -> None:
    message = {"t": "tx", "body": b"\x00\xff", "n": 2**63, "list": [1, "two", None, True]}
    assert FrameDecoder().feed(encode_frame(message)) == [message]


def test_bytes_and_str_stay_distinct() -> None:
    [decoded] = FrameDecoder().feed(encode_frame({"t": "x", "b": b"abc", "s": "abc"}))
    assert decoded["b"] == b"abc" and isinstance(decoded["b"], bytes)
    assert decoded["s"] == "abc" and isinstance(decoded["s"], str)


def test_several_frames_in_one_feed_come_out_in_order() -> None:
    messages = [{"t": "m", "i": i} for i in range(50)]
    stream = b"".join(encode_frame(m) for m in messages)
    assert FrameDecoder().feed(stream) == messages


def test_byte_by_byte_feeding_yields_each_frame_once_complete() -> None:
    messages = [{"t": "a", "v": "x" * 300}, ["list", "frame"], {"t": "b"}]
    stream = b"".join(encode_frame(m) for m in messages)
    decoder = FrameDecoder()
    out: list[Any] = []
    for i in range(len(stream)):
        out.extend(decoder.feed(stream[i : i + 1]))
    assert out == messages
    assert decoder.buffered_bytes == 0


def test_empty_feed_and_partial_header_return_nothing() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\x00\x00") == []
    assert decoder.buffered_bytes == 2
    assert decoder.feed(b"") == []


def test_truncated_frame_waits_for_the_rest() -> None:
    frame = encode_frame({"t": "x", "data": b"z" * 1000})
    decoder = FrameDecoder()
    assert decoder.feed(frame[:-1]) == []
    assert decoder.buffered_bytes == len(frame) - 1
    assert decoder.feed(frame[-1:]) == [{"t": "x", "data": b"z" * 1000}]


def test_zero_length_frame_is_an_error() -> None:
    with pytest.raises(FrameError) as caught:
        FrameDecoder().feed(b"\x00\x00\x00\x00")
    assert caught.value.reason == "empty"


def test_oversized_length_is_refused_from_the_header_alone() -> None:
    decoder = FrameDecoder(max_frame_bytes=1000)
    with pytest.raises(FrameError) as caught:
        decoder.feed(struct.pack(">I", 1001))  # no body sent at all
    assert caught.value.reason == "too_large"
    assert decoder.buffered_bytes == 0  # nothing kept from a stream that went wrong


def test_frame_of_exactly_the_limit_is_accepted() -> None:
    limit = 1000
    empty = {"t": "x", "pad": b""}
    # An empty bin is 2 bytes (c4 00); a bin of 256..65535 bytes has a 3-byte header.
    pad_bytes = limit - len(msgpack.packb(empty, use_bin_type=True)) - 1
    message = {"t": "x", "pad": b"p" * pad_bytes}
    frame = encode_frame(message, max_frame_bytes=limit)
    assert len(frame) - HEADER_BYTES == limit
    assert FrameDecoder(max_frame_bytes=limit).feed(frame) == [message]
    with pytest.raises(FrameError) as caught:
        FrameDecoder(max_frame_bytes=limit - 1).feed(frame)
    assert caught.value.reason == "too_large"
    with pytest.raises(FrameError):
        encode_frame(message, max_frame_bytes=limit - 1)


def test_encode_refuses_what_a_peer_would_refuse() -> None:
    with pytest.raises(FrameError) as caught:
        encode_frame({"t": "x", "data": b"a" * 2000}, max_frame_bytes=1000)
    assert caught.value.reason == "too_large"
    with pytest.raises(FrameError) as caught:
        encode_frame(7)  # type: ignore[arg-type]
    assert caught.value.reason == "bad_shape"
    with pytest.raises(TypeError):
        encode_frame({"t": object()})


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xc1", "undecodable"),  # the one byte msgpack never uses
        (msgpack.packb({"t": "x"}) + b"\x01", "undecodable"),  # two values in one frame
        (msgpack.packb({"t": "x"})[:-1], "undecodable"),  # value cut short inside the frame
        (msgpack.packb(5), "bad_shape"),
        (msgpack.packb("text"), "bad_shape"),
        (msgpack.packb(None), "bad_shape"),
        (b"\xa3\xff\xfe\xfd", "undecodable"),  # str that is not UTF-8 (top level first)
        (b"\x81\xa1t\xa3\xff\xfe\xfd", "undecodable"),  # ... and inside a map
        (msgpack.packb({1: "int key"}), "undecodable"),
        (msgpack.packb({"t": msgpack.ExtType(5, b"x")}), "undecodable"),
        (b"\x91" * 100_000 + b"\xc0", "undecodable"),  # nesting deeper than any message
        (b"\xdd\xff\xff\xff\xff", "undecodable"),  # array announcing 4 billion items
    ],
)
def test_bad_payloads_raise_frame_error(payload: bytes, reason: str) -> None:
    with pytest.raises(FrameError) as caught:
        FrameDecoder().feed(frame_of_payload(payload))
    assert caught.value.reason == reason


def test_decoder_stays_failed_after_an_error() -> None:
    decoder = FrameDecoder()
    with pytest.raises(FrameError):
        decoder.feed(frame_of_payload(b"\xc1"))
    assert decoder.failed
    with pytest.raises(FrameError):
        decoder.feed(encode_frame({"t": "fine"}))


def test_error_after_good_frames_in_the_same_feed_still_raises() -> None:
    decoder = FrameDecoder()
    with pytest.raises(FrameError):
        decoder.feed(encode_frame({"t": "ok"}) + frame_of_payload(b"\xc1"))


@pytest.mark.parametrize("limit", [0, -1, 2**32])
def test_limit_must_fit_a_32_bit_prefix(limit: int) -> None:
    with pytest.raises(ValueError):
        FrameDecoder(max_frame_bytes=limit)


def test_default_limit_is_8_mib() -> None:
    assert FrameDecoder().max_frame_bytes == DEFAULT_MAX_FRAME_BYTES == 8 * 1024 * 1024


# --- property tests ---------------------------------------------------------------------

leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.binary(max_size=64)
    | st.text(max_size=32)
)
value = st.recursive(
    leaf,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=20,
)
message = st.dictionaries(st.text(max_size=8), value, max_size=6).map(lambda d: {"t": "m", **d})


@settings(max_examples=120, deadline=None)
@given(messages=st.lists(message, max_size=8), cuts=st.lists(st.integers(min_value=0), max_size=10))
def test_any_split_of_a_valid_stream_decodes_to_the_same_messages(
    messages: list[dict[str, Any]], cuts: list[int]
) -> None:
    stream = b"".join(encode_frame(m) for m in messages)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    decoder = FrameDecoder()
    out: list[Any] = []
    for start, end in itertools.pairwise(points):
        out.extend(decoder.feed(stream[start:end]))
    assert out == messages
    assert decoder.buffered_bytes == 0


def _feed_all_chunks(decoder: FrameDecoder, chunks: list[bytes]) -> list[Any]:
    out: list[Any] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    return out


@settings(max_examples=500, deadline=None)
@given(chunks=st.lists(st.binary(max_size=64), max_size=8))
def test_arbitrary_bytes_give_frames_or_frame_error_only(chunks: list[bytes]) -> None:
    decoder = FrameDecoder(max_frame_bytes=4096)
    try:
        frames = _feed_all_chunks(decoder, chunks)
    except FrameError as exc:
        assert exc.reason in {"too_large", "empty", "undecodable", "bad_shape"}
        assert decoder.failed
        return
    assert all(isinstance(frame, dict | list) for frame in frames)
    assert decoder.buffered_bytes <= 4096 + HEADER_BYTES


@settings(max_examples=150, deadline=None)
@given(
    messages=st.lists(message, min_size=1, max_size=4),
    position=st.integers(min_value=0),
    replacement=st.integers(min_value=0, max_value=255),
)
def test_a_corrupted_byte_never_escapes_as_another_exception(
    messages: list[dict[str, Any]], position: int, replacement: int
) -> None:
    stream = bytearray(b"".join(encode_frame(m) for m in messages))
    stream[position % len(stream)] = replacement
    decoder = FrameDecoder(max_frame_bytes=1 << 20)
    try:
        frames = decoder.feed(bytes(stream))
    except FrameError:
        return
    assert all(isinstance(frame, dict | list) for frame in frames)
