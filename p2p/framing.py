"""Sans-I/O frame codec: a 4-byte big-endian length, then that many bytes of msgpack.

Modelled on python-hyper/h11: the decoder never touches a socket. The caller feeds it
whatever bytes arrived and gets back the complete frames; a partial frame stays buffered.
A frame's payload is one msgpack map or array (the peer layer puts `{"t": kind, ...}` maps
in it). Anything else -- an announced length above the limit, a zero length, bytes that are
not exactly one msgpack value, a value of another type -- raises FrameError, after which
the decoder refuses all further input: a byte stream that went wrong once cannot be
resynchronised, so the link must be closed.
"""

from __future__ import annotations

import struct
from typing import Any, NoReturn

import msgpack  # type: ignore[import-untyped]

HEADER = struct.Struct(">I")
HEADER_BYTES = HEADER.size
DEFAULT_MAX_FRAME_BYTES = 8 * 1024 * 1024
# A length prefix is 32 bits; a limit above that could never be reached.
LARGEST_MAX_FRAME_BYTES = 2**32 - 1


class FrameError(ValueError):
    """The byte stream broke the framing rules; `reason` is a short stable word for counters."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def _check_max_frame_bytes(max_frame_bytes: int) -> None:
    if not 1 <= max_frame_bytes <= LARGEST_MAX_FRAME_BYTES:
        raise ValueError(f"max_frame_bytes must be in 1..{LARGEST_MAX_FRAME_BYTES}")


def _refuse_ext(code: int, data: bytes) -> NoReturn:
    # Extension types carry application-defined objects; no message of ours uses them.
    raise ValueError(f"msgpack extension type {code} is not allowed")


def encode_payload(obj: Any) -> bytes:
    """msgpack bytes of one message (bin and str kept apart), without the length prefix."""
    payload: bytes = msgpack.packb(obj, use_bin_type=True)
    return payload


def encode_frame(obj: Any, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> bytes:
    """Length prefix + msgpack of obj. Raises FrameError when the peer would refuse it.

    obj must be a dict or a list (the only top-level shapes a decoder accepts), and its
    encoding must not exceed max_frame_bytes. TypeError for values msgpack cannot encode.
    """
    _check_max_frame_bytes(max_frame_bytes)
    if not isinstance(obj, dict | list | tuple):
        raise FrameError("bad_shape", f"top level must be a map or array, not {type(obj)}")
    payload = encode_payload(obj)
    if len(payload) > max_frame_bytes:
        raise FrameError("too_large", f"{len(payload)} bytes, limit {max_frame_bytes}")
    return HEADER.pack(len(payload)) + payload


def decode_payload(payload: bytes | memoryview, max_frame_bytes: int) -> dict[str, Any] | list[Any]:
    """Decode one frame's payload (no prefix); FrameError unless it is one map or array."""
    if len(payload) == 0:
        raise FrameError("empty", "zero-length frame")
    if len(payload) > max_frame_bytes:
        raise FrameError("too_large", f"{len(payload)} bytes, limit {max_frame_bytes}")
    try:
        value = msgpack.unpackb(
            payload,
            raw=False,
            use_list=True,
            strict_map_key=True,
            ext_hook=_refuse_ext,
        )
    except (ValueError, msgpack.UnpackException) as exc:
        # Bytes come from the network: msgpack reports every kind of bad input (truncated,
        # trailing bytes, bad UTF-8, non-str map keys, nesting too deep, ext types) as a
        # ValueError subclass. Each means "this peer sent a bad frame", never a crash.
        # Other exception types are our bugs and are left to surface.
        raise FrameError("undecodable", f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(value, dict | list):
        raise FrameError("bad_shape", f"top level is {type(value).__name__}")
    return value


class FrameDecoder:
    """Turns a byte stream into frames. Holds at most one partial frame (<= limit + 4 bytes)."""

    __slots__ = ("_buffer", "_error", "max_frame_bytes")

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        _check_max_frame_bytes(max_frame_bytes)
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()
        self._error: FrameError | None = None

    @property
    def buffered_bytes(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buffer)

    @property
    def failed(self) -> bool:
        return self._error is not None

    def feed(self, data: bytes | bytearray | memoryview) -> list[Any]:
        """Add received bytes; return every frame they complete, in order.

        Raises FrameError on the first bad frame; the frames before it in this call are
        lost with the link (the caller closes it), and later calls raise the same error.
        """
        if self._error is not None:
            raise self._error
        self._buffer += data
        frames: list[Any] = []
        buffer = self._buffer
        position = 0
        try:
            # Each pass consumes one whole frame, so the loop runs at most
            # len(buffer) / (HEADER_BYTES + 1) times.
            while len(buffer) - position >= HEADER_BYTES:
                (length,) = HEADER.unpack_from(buffer, position)
                # Check the announced length before waiting for the body, so that an
                # oversized frame is refused without buffering any of it.
                if length > self.max_frame_bytes:
                    raise FrameError("too_large", f"{length} bytes, limit {self.max_frame_bytes}")
                if length == 0:
                    raise FrameError("empty", "zero-length frame")
                end = position + HEADER_BYTES + length
                if end > len(buffer):
                    break
                with memoryview(buffer) as view:
                    payload = view[position + HEADER_BYTES : end]
                    try:
                        frames.append(decode_payload(payload, self.max_frame_bytes))
                    finally:
                        payload.release()
                position = end
        except FrameError as exc:
            self._error = exc
            self._buffer = bytearray()
            raise
        # One compaction per feed: O(bytes left over), never quadratic in frame count.
        del buffer[:position]
        return frames
