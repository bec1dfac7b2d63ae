"""Certified headers and the chain of validator sets (docs/PROTOCOL.md sections 12 and 16).

A document carries headers with their commit certificates, and (from version 2 on) the chain
of epoch changes from genesis: for each change, the last header of the epoch before it,
certified by that epoch's set, whose next_validators_hash names the new set. This module
checks both, and every rule of a block header that needs nothing but the header, its
certificate and the set that signs it: canonical encoding, epoch, next set, block 1 after
genesis, the proposer of the view, the certificate's view, the quorum of valid signatures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from consensus.certificates import CertificateError, CommitCertificate, verify_certificate
from node.ledger import apps, crypto, encoding
from node.ledger.block import BlockHeader
from node.ledger.errors import BlockInvalid
from node.ledger.genesis import Genesis
from node.ledger.governance import validator_set_hash
from node.ledger.stateroot import state_root
from node.proofs.jsondoc import VerificationError, exact_map, hex_bytes
from node.proofs.rules import RuleLog

MAX_EPOCH_CHANGES = 100_000
MAX_HEADER_BYTES = 4096
MAX_CERTIFICATE_BYTES = 1 << 20
EPOCH_KEYS = frozenset({"header", "certificate", "validators"})
HEADER_ENTRY_KEYS = frozenset({"header", "certificate"})
EMPTY_RESULTS_ROOT = crypto.sha256(b"")


@dataclass(frozen=True)
class KnownEpoch:
    number: int
    start_height: int
    names: tuple[str, ...]
    keys: tuple[bytes, ...]

    @property
    def set_hash(self) -> bytes:
        return validator_set_hash(
            [{"name": n, "public_key": k} for n, k in zip(self.names, self.keys, strict=True)]
        )


class EpochChain:
    """The validator sets from genesis on, as a document's epoch changes establish them."""

    def __init__(self, genesis: Genesis) -> None:
        self.epochs = [
            KnownEpoch(
                0,
                1,
                tuple(v.name for v in genesis.validators),
                tuple(v.public_key for v in genesis.validators),
            )
        ]

    def at(self, height: int) -> KnownEpoch:
        found = self.epochs[0]
        for epoch in self.epochs:
            if epoch.start_height <= height:
                found = epoch
        return found


@dataclass(frozen=True)
class CertifiedHeader:
    header: BlockHeader
    block_hash: bytes
    certificate: CommitCertificate
    signer_names: tuple[str, ...]
    epoch: KnownEpoch


def decode_header(raw: bytes, part: str, genesis: Genesis) -> BlockHeader:
    try:
        header = BlockHeader.from_obj(encoding.unpack(raw))
    except (encoding.EncodingError, BlockInvalid) as exc:
        raise VerificationError(part, f"not a canonical block header: {exc}") from None
    if header.chain_id != genesis.chain_id:
        raise VerificationError(part, f"is for chain {header.chain_id!r}")
    if header.height < 1:
        raise VerificationError(part, "height must be at least 1")
    return header


def _check_first_block(header: BlockHeader, part: str, genesis: Genesis, log: RuleLog) -> None:
    """Block 1 is the only header whose roots an offline verifier can recompute."""
    if header.height != 1:
        return
    log.checked("first-block")
    if header.prev_hash != genesis.hash:
        raise VerificationError(part, "block 1's prev_hash is not the genesis hash")
    if header.results_root != EMPTY_RESULTS_ROOT:
        raise VerificationError(part, "block 1's results_root is not the empty tree's root")
    if header.state_root != state_root(apps.genesis_state(genesis)):
        raise VerificationError(part, "block 1's state_root is not the genesis state root")


def _decode_certificate(entry: dict[str, Any], part: str, timed: bool | None) -> CommitCertificate:
    raw = hex_bytes(entry["certificate"], f"{part}.certificate", max_bytes=MAX_CERTIFICATE_BYTES)
    try:
        certificate = CommitCertificate.from_bytes(raw)
    except CertificateError as exc:
        raise VerificationError(f"{part}.certificate", exc.reason) from None
    if certificate.to_bytes() != raw:
        raise VerificationError(f"{part}.certificate", "is not canonically encoded")
    if timed is True and not certificate.timed:
        raise VerificationError(
            f"{part}.certificate", "must be a timed (version 2) certificate in this format"
        )
    if timed is False and certificate.timed:
        raise VerificationError(
            f"{part}.certificate", "a timed certificate needs document format version 3"
        )
    return certificate


def certified_header(
    entry: object,
    part: str,
    genesis: Genesis,
    epochs: EpochChain,
    log: RuleLog,
    *,
    check_next: bool,
    timed: bool | None,
) -> CertifiedHeader:
    """check_next: the document also covers the height after this header, so the epoch
    chain knows the set that signs it and next_validators_hash must name that set.
    timed: the certificate must be timed (True), untimed (False), or either (None)."""
    log.checked("header")
    entry = exact_map(entry, HEADER_ENTRY_KEYS, part)
    raw_header = hex_bytes(entry["header"], f"{part}.header", max_bytes=MAX_HEADER_BYTES)
    header = decode_header(raw_header, f"{part}.header", genesis)
    block_hash = header.hash()
    log.checked("certificate")
    certificate = _decode_certificate(entry, part, timed)
    if certificate.height != header.height:
        raise VerificationError(
            f"{part}.certificate",
            f"certifies height {certificate.height}, the header is height {header.height}",
        )
    if certificate.digest != block_hash:
        raise VerificationError(f"{part}.certificate", "certifies another block (digest differs)")
    epoch = epochs.at(header.height)
    log.checked("header")
    if header.version >= 2:
        if header.epoch != epoch.number:
            raise VerificationError(
                f"{part}.header",
                f"names epoch {header.epoch}, but the epoch chain gives epoch {epoch.number} "
                f"for height {header.height} (an epoch change is missing from the document?)",
            )
        if check_next:
            log.checked("next-set")
            if header.next_validators_hash != epochs.at(header.height + 1).set_hash:
                raise VerificationError(
                    f"{part}.header",
                    "its next_validators_hash is not the set the epoch chain gives for the "
                    "next height (an epoch change is missing from the document?)",
                )
    elif len(epochs.epochs) > 1 and epoch.number > 0:
        raise VerificationError(f"{part}.header", "a version 1 header in a later epoch")
    _check_first_block(header, f"{part}.header", genesis, log)
    log.checked("proposer")
    n = len(epoch.keys)
    if header.proposer != header.view % n:
        raise VerificationError(
            f"{part}.header",
            f"proposer {header.proposer} does not lead view {header.view} "
            f"(the leader of view v is v mod {n})",
        )
    log.checked("commit-view")
    if certificate.view < header.view:
        raise VerificationError(
            f"{part}.certificate",
            f"commits in view {certificate.view}, before the header's view {header.view}",
        )
    log.checked("quorum")
    try:
        verify_certificate(certificate, genesis.chain_id, epoch.keys, crypto.verify)
    except CertificateError as exc:
        raise VerificationError(
            f"{part}.certificate", f"{exc.reason} (epoch {epoch.number}'s set)"
        ) from None
    names = tuple(epoch.names[i] for i in certificate.signers())
    return CertifiedHeader(header, block_hash, certificate, names, epoch)


def _new_set(entry: dict[str, Any], part: str, number: int) -> KnownEpoch:
    validators = entry["validators"]
    if not isinstance(validators, list) or not validators:
        raise VerificationError(f"{part}.validators", "must list the new set")
    names, keys = [], []
    for j, v in enumerate(validators):
        v = exact_map(v, frozenset({"name", "public_key"}), f"{part}.validators[{j}]")
        if not isinstance(v["name"], str):
            raise VerificationError(f"{part}.validators[{j}].name", "must be a string")
        names.append(v["name"])
        keys.append(hex_bytes(v["public_key"], f"{part}.validators[{j}].public_key", 32))
    if len(set(keys)) != len(keys):
        raise VerificationError(f"{part}.validators", "two validators share a key")
    return KnownEpoch(number, 0, tuple(names), tuple(keys))


def epoch_chain(
    doc: dict[str, Any], genesis: Genesis, log: RuleLog, *, timed: bool | None
) -> EpochChain:
    """Walk the document's epoch changes from genesis: each is the last header of an epoch,
    certified by that epoch's set, naming the next set in next_validators_hash."""
    chain = EpochChain(genesis)
    if "epochs" not in doc:  # version 1 documents: the genesis set signs everything
        return chain
    entries = doc["epochs"]
    log.checked("epochs")
    if not isinstance(entries, list) or len(entries) > MAX_EPOCH_CHANGES:
        raise VerificationError("epochs", f"must be a list of at most {MAX_EPOCH_CHANGES}")
    for i, raw in enumerate(entries):
        part = f"epochs[{i}]"
        log.checked("epochs")
        entry = exact_map(raw, EPOCH_KEYS, part)
        current = chain.epochs[-1]
        new = _new_set(entry, part, current.number + 1)
        header_part = {"header": entry["header"], "certificate": entry["certificate"]}
        # The hand-over header: certified by the old set, naming the new one.
        certified = certified_header(
            header_part, part, genesis, chain, log, check_next=False, timed=timed
        )
        header = certified.header
        log.checked("epochs")
        if header.version < 2 or header.height + 1 <= current.start_height:
            raise VerificationError(part, "is not a later version-2 header")
        if header.next_validators_hash != new.set_hash:
            raise VerificationError(part, "its next_validators_hash is not the listed set")
        if new.set_hash == current.set_hash:
            raise VerificationError(part, "changes nothing: the set is the one before it")
        chain.epochs.append(KnownEpoch(new.number, header.height + 1, new.names, new.keys))
    return chain


def certified_chain(
    doc: dict[str, Any],
    genesis: Genesis,
    count: int,
    log: RuleLog,
    *,
    timed: bool,
    epochs_timed: bool | None,
) -> list[CertifiedHeader]:
    """The document's `count` consecutive certified headers, checked against its epochs."""
    entries = doc["headers"]
    log.checked("shape")
    if not isinstance(entries, list) or len(entries) != count:
        raise VerificationError("headers", f"must hold exactly {count} certified header(s)")
    epochs = epoch_chain(doc, genesis, log, timed=epochs_timed)
    chain = [
        certified_header(
            e, f"headers[{i}]", genesis, epochs, log, check_next=i + 1 < count, timed=timed
        )
        for i, e in enumerate(entries)
    ]
    for i in range(1, count):
        before, after = chain[i - 1], chain[i]
        log.checked("hash-chain")
        if after.header.height != before.header.height + 1:
            raise VerificationError(f"headers[{i}]", "does not follow the header before it")
        if after.header.prev_hash != before.block_hash:
            raise VerificationError(
                f"headers[{i}]", "prev_hash is not the hash of the header before it"
            )
        log.checked("time-order")
        if after.header.timestamp_ms <= before.header.timestamp_ms:
            raise VerificationError(
                f"headers[{i}]",
                f"timestamp_ms {after.header.timestamp_ms} is not after the block before it "
                f"({before.header.timestamp_ms})",
            )
    return chain
