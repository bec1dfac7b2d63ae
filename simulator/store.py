"""What a simulated node keeps across crashes: node/daemon/store.py in miniature.

The blocks with their certificates and state roots, the replica's persisted record, and the
journal of decided blocks, with the same write semantics as the node's Store: a record write
and the decided blocks it journals are one write (`save`, as Store.save_consensus and
Store.journal_decided), each block commit is one write (`commit`), and on start the journal
is replayed by the node's own rule (consensus.ready.replay_on_start). Everything here
survives a crash; everything else of a simulated node is lost with it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from consensus import CommitCertificate, PersistedState
from consensus.checkpoints import last_checkpoint_height
from consensus.ready import JournalEntry, replay_on_start
from simulator.app import GENESIS_DIGEST, GENESIS_ROOT, decode_body
from simulator.epochs import EpochSchedule


@dataclass(frozen=True, slots=True)
class StoredBlock:
    height: int
    payload: bytes
    digest: bytes  # SHA-256 of the payload: the block hash of every simulated app
    certificate: CommitCertificate
    state_root: bytes  # SHA-256(state root after height - 1 || digest)


class StoreRuleError(Exception):
    """A write the node's Store would refuse (a block that does not follow the head)."""


class SimStore:
    def __init__(self, schedule: EpochSchedule | None = None) -> None:
        # None: a fixed validator set (the transcripts and the unit tests' clusters).
        self.schedule = schedule
        self.blocks: list[StoredBlock] = []
        # The last record written. Kept as written and encoded when read back on start:
        # the bytes are the same (the encoding is deterministic), the encoding per vote not.
        self.record: PersistedState | None = None
        self.journal: list[JournalEntry] = []
        self.writes = 0  # synced writes, for the statistics

    @property
    def head_height(self) -> int:
        return len(self.blocks)

    def digest_at(self, height: int) -> bytes:
        return GENESIS_DIGEST if height == 0 else self.blocks[height - 1].digest

    def root_at(self, height: int) -> bytes:
        return GENESIS_ROOT if height == 0 else self.blocks[height - 1].state_root

    def last_checkpoint_root(self, interval: int) -> bytes:
        """The state root after the last checkpoint height at or below the head: what a
        Replica rebuilt from this store takes as checkpoint_state_root."""
        return self.root_at(last_checkpoint_height(self.head_height, interval))

    def head_certificate(self) -> CommitCertificate | None:
        return self.blocks[-1].certificate if self.blocks else None

    def persisted(self) -> PersistedState | None:
        """The last record written, parsed from its bytes as the node parses it on start."""
        return None if self.record is None else PersistedState.from_bytes(self.record.to_bytes())

    # --------------------------------------------------------------------------- writes

    def save(self, record: PersistedState | None, journal: list[JournalEntry]) -> None:
        """One synced write: the record (when given) and the journal, replaced when this
        write journals blocks and left as it was otherwise (as the node's Store does)."""
        self.writes += 1
        if record is not None:
            self.record = record
        if journal:
            self.journal = list(journal)

    def commit(self, height: int, payload: bytes, certificate: CommitCertificate) -> StoredBlock:
        """Execute and store block `height` (one write: block, certificate, new head)."""
        if height != self.head_height + 1:
            raise StoreRuleError(f"block {height} does not follow head {self.head_height}")
        if certificate.height != height:
            raise StoreRuleError(f"certificate for {certificate.height} stored with {height}")
        self.writes += 1
        digest = hashlib.sha256(payload).digest()
        root = hashlib.sha256(self.root_at(height - 1) + digest).digest()
        block = StoredBlock(height, payload, digest, certificate, root)
        self.blocks.append(block)
        if self.schedule is not None:
            body = decode_body(payload)
            if body is not None and body.change is not None:
                # A change the block may not carry changes nothing (the checker's validity
                # check reports such a block; the node's governance records a failure).
                self.schedule = self.schedule.after(height, body.change) or self.schedule
        return block

    def recover(self) -> list[StoredBlock]:
        """On start, before the replica is rebuilt: commit the journaled blocks that
        continue the chain (the node's rule, node/daemon/node.py `_replay_decided`)."""
        committed: list[StoredBlock] = []
        for height, payload, certificate in replay_on_start(self.journal, self.head_height):
            committed.append(
                self.commit(height, payload, CommitCertificate.from_bytes(certificate))
            )
        return committed
