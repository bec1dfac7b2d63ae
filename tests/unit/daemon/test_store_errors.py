"""How the store names a failed write: the operator's next step depends on the words."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lmdb
import pytest

from node.daemon.store import Store, StoreError


def fail_inside_write(store: Store, error: lmdb.Error) -> str:
    with pytest.raises(StoreError) as info, store._writing():
        raise error
    return str(info.value)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "data")
    yield opened
    opened.close()


def test_no_space_says_free_space_whichever_lmdb_class_carries_it(store: Store) -> None:
    # lmdb raises ENOSPC as DiskError from mdb_txn_commit, as plain Error elsewhere.
    for error in (
        lmdb.DiskError("mdb_txn_commit: No space left on device"),
        lmdb.Error("mdb_put: No space left on device"),
    ):
        message = fail_inside_write(store, error)
        assert "is full" in message and "free space" in message and str(store.path) in message


def test_other_disk_errors_and_map_full_name_their_own_remedy(store: Store) -> None:
    message = fail_inside_write(store, lmdb.DiskError("injected write error"))
    assert message.startswith("disk error while writing") and "free space" not in message
    message = fail_inside_write(store, lmdb.MapFullError("mdb_put: MDB_MAP_FULL"))
    assert "map_size_mb" in message
    message = fail_inside_write(store, lmdb.Error("mdb_put: Invalid argument"))
    assert message.startswith(f"writing {store.path} failed")


def test_a_failed_write_leaves_nothing_written(store: Store) -> None:
    with pytest.raises(StoreError), store._writing() as txn:
        txn.put(b"k", b"v", db=store.db["state"])
        raise lmdb.DiskError("injected")
    with store.env.begin() as txn:
        assert txn.get(b"k", db=store.db["state"]) is None
