from __future__ import annotations

import pytest
from support.ledger import Account, DictState

from node.ledger.apps import genesis_writes


@pytest.fixture
def accounts() -> dict[str, Account]:
    return {
        name: Account(name, i + 1)
        for i, name in enumerate(["admin", "maker", "shipper", "inspector", "outsider"])
    }


@pytest.fixture
def state(accounts: dict[str, Account]) -> DictState:
    roles = {
        "admin": ("admin",),
        "maker": ("member",),
        "shipper": ("member",),
        "inspector": ("member", "inspector"),
    }
    return DictState(genesis_writes((accounts[n].pub, n, r) for n, r in roles.items()))
