"""Shared fixtures: grids are built once per session (they are immutable in tests: copy to edit)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# In CI a postgres/mqtt/browser test that would skip fails instead (see required_services.py).
pytest_plugins = ["required_services", "pytester"]

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def pytest_configure(config: pytest.Config) -> None:
    """Once per run (not in each xdist worker): drop numba caches that a changed kernel
    module made stale (numba checks only a kernel's own source file)."""
    if not hasattr(config, "workerinput"):
        from gridpilot.kernels import invalidate_stale_caches

        invalidate_stale_caches()


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep the grid cache inside the session unless the user set one."""
    os.environ.setdefault("GRIDPILOT_CACHE", str(tmp_path_factory.mktemp("gridpilot-cache")))


@pytest.fixture(scope="session")
def case33():
    from gridpilot.model import load_grid

    return load_grid("case33bw")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the repository (data for tests; may be missing on a user's machine)."""
    return SHARED
