"""Functions a test runs in a spawned child process (importable there by name)."""

from __future__ import annotations

import os
import signal
from typing import Any


def killed_by_a_signal(*_args: Any) -> None:
    """A child that is stopped by SIGKILL before it answers (as at a server's shutdown)."""
    os.kill(os.getpid(), signal.SIGKILL)


def exits_with_3(*_args: Any) -> None:
    """A child that exits with status 3 without answering (a crash of the study)."""
    os._exit(3)
