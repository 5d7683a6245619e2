"""Network helpers shared by the tests (importable as ``netutil``: tests/ is on sys.path, as for
``required_services``)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(base: str, tries: int = 200) -> None:
    """Poll ``base``/api/health until it answers 200 (at most ``tries`` attempts 0.1 s apart
    while the server is not up yet); the test's own requests then say if it never came."""
    import time

    import httpx

    for _ in range(tries):
        try:
            if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
