"""Shared fixtures: every test gets its own workspace and user, nothing leaks between tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from evaltray.core.store import Workspace

DATA = Path(__file__).parent / "data"

# Property tests run the same examples on every run (a red CI means a change broke something, not that a
# new random example turned up); HYPOTHESIS_PROFILE=explore draws new ones, to hunt for bugs locally.
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long tests marked ``early`` run first, so with ``-n 2`` they overlap the rest instead of trailing it."""
    items.sort(key=lambda item: item.get_closest_marker("early") is None)


@pytest.fixture(autouse=True)
def _isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("EVALTRAY_USER", "EVALTRAY_WORKSPACE", "EVALTRAY_DB_URL", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)
    # each test's users keep their keys here, never in the real home directory
    monkeypatch.setenv("EVALTRAY_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    """A fresh workspace in ``tmp_path/ws`` whose admin is ``alice``."""
    workspace = Workspace.init(tmp_path / "ws", name="shop-bot", user="alice")
    yield workspace
    workspace.close()
