"""PBFT consensus as a pure state machine (no I/O, no clock, no randomness).

See docs/CONSENSUS.md for the protocol, message formats, signing bytes and persistence rules.
"""

from consensus.actions import (
    Action,
    Broadcast,
    Deliver,
    FetchBlocks,
    Misbehaviour,
    Persist,
    Send,
)
from consensus.censorship import censorship_suspected
from consensus.certificates import (
    CertificateError,
    CheckpointProof,
    CommitCertificate,
    PreparedCertificate,
    checkpoint_signing_bytes,
    verify_certificate,
    vote_signing_bytes,
)
from consensus.config import App, ReplicaConfig, Signer, Verifier
from consensus.invariants import InvariantViolation
from consensus.messages import (
    Checkpoint,
    Commit,
    CommitNotice,
    Message,
    MessageError,
    NewView,
    Prepare,
    PrePrepare,
    ViewChange,
    decode_message,
    encode_message,
)
from consensus.persisted import PersistedState, SignedVote
from consensus.quorum import max_faulty, quorum_size
from consensus.replica import Replica
from consensus.screen import UNATTRIBUTABLE

__all__ = [
    "Action",
    "App",
    "Broadcast",
    "CertificateError",
    "Checkpoint",
    "CheckpointProof",
    "Commit",
    "CommitCertificate",
    "CommitNotice",
    "Deliver",
    "FetchBlocks",
    "InvariantViolation",
    "Message",
    "MessageError",
    "Misbehaviour",
    "NewView",
    "Persist",
    "PersistedState",
    "PrePrepare",
    "Prepare",
    "PreparedCertificate",
    "Replica",
    "ReplicaConfig",
    "Send",
    "SignedVote",
    "Signer",
    "UNATTRIBUTABLE",
    "Verifier",
    "ViewChange",
    "censorship_suspected",
    "checkpoint_signing_bytes",
    "decode_message",
    "encode_message",
    "max_faulty",
    "quorum_size",
    "verify_certificate",
    "vote_signing_bytes",
]
