"""The store contract, configuration: stored settings, seen by every store on the database.

Run against every backend (tests/contract/helpers.py says how)."""

from __future__ import annotations

from queuectl.settings import Config
from queuectl.store import Store
from tests.stores import StoreFactory


def test_config_set_and_get(store: Store, store_factory: StoreFactory) -> None:
    assert store.stored_config() == {}
    assert store.config() == Config.from_stored({})
    store.set_config("max_retries", "5")
    store.set_config("backoff_base", "1.5")
    assert store.stored_config() == {"max_retries": "5", "backoff_base": "1.5"}
    assert store.config().max_retries == 5
    assert store.config().backoff_base == 1.5
    store.set_config("max_retries", "0")
    assert store.stored_config()["max_retries"] == "0"
    other = store_factory()
    assert other.stored_config() == {"max_retries": "0", "backoff_base": "1.5"}
    assert other.config().max_retries == 0
