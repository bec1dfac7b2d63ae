"""Protocol messages, their signing bytes, and a strict wire codec.

Wire format: a msgpack array [WIRE_VERSION, kind, fields...]. Nested certificates are arrays
too (certificates.py). decode_message rejects anything malformed with MessageError: wrong
types, unknown kinds, out-of-range integers, oversized fields.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgpack  # type: ignore[import-untyped]

from consensus.certificates import (
    DOMAIN_TAG,
    MAX_SIGNATURE_BYTES,
    PHASE_COMMIT,
    PHASE_PRE_PREPARE,
    PHASE_PREPARE,
    CertificateError,
    CheckpointProof,
    CommitCertificate,
    PreparedCertificate,
    checkpoint_signing_bytes,
    notice_signing_bytes,
    parse_digest,
    parse_uint,
    vote_signing_bytes,
)
from consensus.config import DEFAULT_MAX_PAYLOAD_BYTES, MAX_VALIDATORS

# 2: view changes and new views name their epoch (a validator set; indexes are per epoch).
# 3: a commit carries (and signs) its signer's clock reading; certificates may be timed.
WIRE_VERSION = 3
KIND_PRE_PREPARE = 1
KIND_PREPARE = 2
KIND_COMMIT = 3
KIND_CHECKPOINT = 4
KIND_VIEW_CHANGE = 5
KIND_NEW_VIEW = 6
KIND_COMMIT_NOTICE = 7
# Everything except one payload is small: certificates of up to MAX_VALIDATORS signatures.
_OVERHEAD_BYTES = 4 * 1024 * 1024


class MessageError(Exception):
    """Bytes that are not a well-formed protocol message."""


def _pack(value: object) -> bytes:
    packed = msgpack.packb(value, use_bin_type=True)
    if not isinstance(packed, bytes):
        raise TypeError("msgpack.packb did not return bytes")
    return packed


@dataclass(frozen=True, slots=True)
class PrePrepare:
    """The leader's proposal of `payload` as block `height` in `view`."""

    view: int
    height: int
    digest: bytes
    payload: bytes
    # The certificate of height - 1, when the leader has it: lets a lagging replica learn
    # that it is behind from a valid commit certificate.
    last_commit: CommitCertificate | None
    sender: int
    signature: bytes

    def signing_bytes(self, chain_id: str) -> bytes:
        return vote_signing_bytes(chain_id, PHASE_PRE_PREPARE, self.view, self.height, self.digest)


@dataclass(frozen=True, slots=True)
class Prepare:
    view: int
    height: int
    digest: bytes
    sender: int
    signature: bytes

    def signing_bytes(self, chain_id: str) -> bytes:
        return vote_signing_bytes(chain_id, PHASE_PREPARE, self.view, self.height, self.digest)


@dataclass(frozen=True, slots=True)
class Commit:
    view: int
    height: int
    digest: bytes
    sender: int
    signature: bytes
    # The signer's clock when it signed (ms since 1970), inside the signed bytes: the
    # certificate's readings certify when the block committed (bfttime.py).
    time_ms: int = 0

    def signing_bytes(self, chain_id: str) -> bytes:
        return vote_signing_bytes(
            chain_id, PHASE_COMMIT, self.view, self.height, self.digest, self.time_ms
        )


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The state root a validator reached after executing block `height` (a multiple of K)."""

    height: int
    state_root: bytes
    sender: int
    signature: bytes

    def signing_bytes(self, chain_id: str) -> bytes:
        return checkpoint_signing_bytes(chain_id, self.height, self.state_root)


@dataclass(frozen=True, slots=True)
class ViewChange:
    """A vote to move to `new_view`, carrying what the sender knows above its stable checkpoint.

    The signature covers the summaries (height, view, digest) of the three certificates, not
    their signatures, nor the payload: the payload is checked against prepared.digest."""

    new_view: int
    stable_checkpoint: CheckpointProof | None
    last_commit: CommitCertificate | None
    prepared: PreparedCertificate | None
    prepared_payload: bytes | None  # required standalone, stripped inside a NewView
    sender: int
    signature: bytes
    epoch: int = 0  # the validator set whose index `sender` is

    def signing_bytes(self, chain_id: str) -> bytes:
        checkpoint = self.stable_checkpoint
        commit = self.last_commit
        prepared = self.prepared
        return _pack(
            [
                DOMAIN_TAG,
                chain_id,
                "view-change",
                self.epoch,
                self.new_view,
                None if checkpoint is None else [checkpoint.height, checkpoint.state_root],
                None if commit is None else [commit.height, commit.view, commit.digest],
                None if prepared is None else [prepared.height, prepared.view, prepared.digest],
            ]
        )

    def without_payload(self) -> ViewChange:
        return ViewChange(
            self.new_view,
            self.stable_checkpoint,
            self.last_commit,
            self.prepared,
            None,
            self.sender,
            self.signature,
            self.epoch,
        )


@dataclass(frozen=True, slots=True)
class NewView:
    """The new leader's proof (a quorum of view changes) that `view` starts, with the block it
    must re-propose when one of them carries a prepared certificate."""

    view: int
    view_changes: tuple[ViewChange, ...]
    pre_prepare: PrePrepare | None
    sender: int
    signature: bytes
    epoch: int = 0

    def signing_bytes(self, chain_id: str) -> bytes:
        proposal = self.pre_prepare
        return _pack(
            [
                DOMAIN_TAG,
                chain_id,
                "new-view",
                self.epoch,
                self.view,
                [vc.sender for vc in self.view_changes],
                None if proposal is None else [proposal.height, proposal.digest],
            ]
        )


@dataclass(frozen=True, slots=True)
class CommitNotice:
    """A commit certificate sent to a replica that is still voting on a decided height."""

    certificate: CommitCertificate
    sender: int
    signature: bytes

    def signing_bytes(self, chain_id: str) -> bytes:
        cert = self.certificate
        return notice_signing_bytes(chain_id, cert.height, cert.view, cert.digest)


Message = PrePrepare | Prepare | Commit | Checkpoint | ViewChange | NewView | CommitNotice
MESSAGE_TYPES = (PrePrepare, Prepare, Commit, Checkpoint, ViewChange, NewView, CommitNotice)


# ---------------------------------------------------------------------------------- encoding


def _opt_wire(value: CommitCertificate | PreparedCertificate | CheckpointProof | None) -> object:
    return None if value is None else value.to_wire()


def _view_change_wire(msg: ViewChange) -> list[object]:
    return [
        msg.new_view,
        _opt_wire(msg.stable_checkpoint),
        _opt_wire(msg.last_commit),
        _opt_wire(msg.prepared),
        msg.prepared_payload,
        msg.sender,
        msg.signature,
        msg.epoch,
    ]


def _pre_prepare_wire(msg: PrePrepare) -> list[object]:
    return [
        msg.view,
        msg.height,
        msg.digest,
        msg.payload,
        _opt_wire(msg.last_commit),
        msg.sender,
        msg.signature,
    ]


def encode_message(msg: Message) -> bytes:
    """The wire bytes of a message."""
    body: list[object]
    if isinstance(msg, PrePrepare):
        body = [KIND_PRE_PREPARE, *_pre_prepare_wire(msg)]
    elif isinstance(msg, Prepare):
        body = [KIND_PREPARE, msg.view, msg.height, msg.digest, msg.sender, msg.signature]
    elif isinstance(msg, Commit):
        body = [
            KIND_COMMIT,
            msg.view,
            msg.height,
            msg.digest,
            msg.sender,
            msg.signature,
            msg.time_ms,
        ]
    elif isinstance(msg, Checkpoint):
        body = [KIND_CHECKPOINT, msg.height, msg.state_root, msg.sender, msg.signature]
    elif isinstance(msg, ViewChange):
        body = [KIND_VIEW_CHANGE, *_view_change_wire(msg)]
    elif isinstance(msg, NewView):
        body = [
            KIND_NEW_VIEW,
            msg.view,
            [_view_change_wire(vc) for vc in msg.view_changes],
            None if msg.pre_prepare is None else _pre_prepare_wire(msg.pre_prepare),
            msg.sender,
            msg.signature,
            msg.epoch,
        ]
    elif isinstance(msg, CommitNotice):
        body = [KIND_COMMIT_NOTICE, msg.certificate.to_wire(), msg.sender, msg.signature]
    else:
        raise TypeError(f"not a protocol message: {type(msg).__name__}")
    return _pack([WIRE_VERSION, *body])


# ---------------------------------------------------------------------------------- decoding


def decode_message(data: bytes, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> Message:
    """Parse wire bytes into a message; raise MessageError on anything malformed."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MessageError("message must be bytes")
    if len(data) > max_payload_bytes + _OVERHEAD_BYTES:
        raise MessageError(f"message of {len(data)} bytes is too large")
    try:
        value = msgpack.unpackb(
            bytes(data),
            raw=False,
            strict_map_key=True,
            max_bin_len=max_payload_bytes,
            max_str_len=64,
            max_array_len=MAX_VALIDATORS,
            max_map_len=0,
            max_ext_len=0,
        )
    except Exception as error:  # untrusted bytes: every parse failure is a MessageError
        raise MessageError(f"not valid msgpack: {type(error).__name__}: {error}") from None
    try:
        return _decode_value(value, max_payload_bytes)
    except CertificateError as error:
        raise MessageError(error.reason) from None


def _decode_value(value: object, max_payload_bytes: int) -> Message:
    if not isinstance(value, list) or len(value) < 2:
        raise MessageError("message is not an array [version, kind, ...]")
    if type(value[0]) is not int or value[0] != WIRE_VERSION:
        raise MessageError(f"unsupported wire version {value[0]!r}")
    kind = value[1]
    fields = value[2:]
    if kind == KIND_PRE_PREPARE:
        return _decode_pre_prepare(fields, max_payload_bytes)
    if kind == KIND_PREPARE:
        _expect_len(fields, 5, "prepare")
        return Prepare(
            parse_uint(fields[0], "view"),
            parse_uint(fields[1], "height"),
            parse_digest(fields[2], "digest"),
            _sender(fields[3]),
            _signature(fields[4]),
        )
    if kind == KIND_COMMIT:
        _expect_len(fields, 6, "commit")
        return Commit(
            parse_uint(fields[0], "view"),
            parse_uint(fields[1], "height"),
            parse_digest(fields[2], "digest"),
            _sender(fields[3]),
            _signature(fields[4]),
            parse_uint(fields[5], "time_ms"),
        )
    if kind == KIND_CHECKPOINT:
        _expect_len(fields, 4, "checkpoint")
        return Checkpoint(
            parse_uint(fields[0], "height"),
            parse_digest(fields[1], "state root"),
            _sender(fields[2]),
            _signature(fields[3]),
        )
    if kind == KIND_VIEW_CHANGE:
        return _decode_view_change(fields, max_payload_bytes)
    if kind == KIND_NEW_VIEW:
        return _decode_new_view(fields, max_payload_bytes)
    if kind == KIND_COMMIT_NOTICE:
        _expect_len(fields, 3, "commit notice")
        return CommitNotice(
            CommitCertificate.from_wire(fields[0]), _sender(fields[1]), _signature(fields[2])
        )
    raise MessageError(f"unknown message kind {kind!r}")


def _expect_len(fields: list[object], count: int, what: str) -> None:
    if len(fields) != count:
        raise MessageError(f"{what}: expected {count} fields, got {len(fields)}")


def _sender(value: object) -> int:
    sender = parse_uint(value, "sender")
    if sender >= MAX_VALIDATORS:
        raise MessageError(f"sender {sender} is out of range")
    return sender


def _signature(value: object) -> bytes:
    if not isinstance(value, bytes) or not 0 < len(value) <= MAX_SIGNATURE_BYTES:
        raise MessageError(f"signature must be 1 to {MAX_SIGNATURE_BYTES} bytes")
    return value


def _payload(value: object, max_payload_bytes: int) -> bytes:
    if not isinstance(value, bytes) or len(value) > max_payload_bytes:
        raise MessageError(f"payload must be bytes of at most {max_payload_bytes}")
    return value


def _decode_pre_prepare(fields: list[object], max_payload_bytes: int) -> PrePrepare:
    _expect_len(fields, 7, "pre-prepare")
    return PrePrepare(
        parse_uint(fields[0], "view"),
        parse_uint(fields[1], "height"),
        parse_digest(fields[2], "digest"),
        _payload(fields[3], max_payload_bytes),
        None if fields[4] is None else CommitCertificate.from_wire(fields[4]),
        _sender(fields[5]),
        _signature(fields[6]),
    )


def _decode_view_change(fields: object, max_payload_bytes: int) -> ViewChange:
    if not isinstance(fields, list):
        raise MessageError("view change is not an array")
    _expect_len(fields, 8, "view change")
    payload = None if fields[4] is None else _payload(fields[4], max_payload_bytes)
    return ViewChange(
        parse_uint(fields[0], "new view"),
        None if fields[1] is None else CheckpointProof.from_wire(fields[1]),
        None if fields[2] is None else CommitCertificate.from_wire(fields[2]),
        None if fields[3] is None else PreparedCertificate.from_wire(fields[3]),
        payload,
        _sender(fields[5]),
        _signature(fields[6]),
        parse_uint(fields[7], "epoch"),
    )


def _decode_new_view(fields: list[object], max_payload_bytes: int) -> NewView:
    _expect_len(fields, 6, "new view")
    raw_changes = fields[1]
    if not isinstance(raw_changes, list):
        raise MessageError("new view: view changes must be an array")
    # Inside a new view the view changes travel without payloads (only the proposal has one).
    view_changes = tuple(_decode_view_change(vc, 0) for vc in raw_changes)
    raw_proposal = fields[2]
    proposal = None
    if raw_proposal is not None:
        if not isinstance(raw_proposal, list):
            raise MessageError("new view: pre-prepare must be an array")
        proposal = _decode_pre_prepare(raw_proposal, max_payload_bytes)
    return NewView(
        parse_uint(fields[0], "view"),
        view_changes,
        proposal,
        _sender(fields[3]),
        _signature(fields[4]),
        parse_uint(fields[5], "epoch"),
    )
