"""Fixtures of the protocol tests: an ASGI app on 127.0.0.1 with a free port, in a thread."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import uvicorn


class Served:
    """``with Served(app) as base_url:`` runs ``app`` with uvicorn until the block ends."""

    def __init__(self, app: Any) -> None:
        cfg = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                break
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def served() -> type[Served]:
    """``with served(app) as base_url:`` serves ``app`` on a free port for the block."""
    return Served
