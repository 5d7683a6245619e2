"""The package's numba kernels: is their on-disk cache warm, and a notice while they compile.

numba compiles each ``@njit(cache=True)`` kernel on its first call in a fresh installation (about
a minute for all of gridpilot's on 2 cores) and caches the machine code beside the source, in
``__pycache__`` (or ``NUMBA_CACHE_DIR``), valid while the source is unchanged. This module asks
numba's cache index which kernel modules would compile on first call, so the CLI can say
"compiling kernels (once)" instead of sitting silent; ``gridpilot warmup`` (run by ``make``)
fills the cache ahead of time.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

log = logging.getLogger(__name__)

KERNEL_MODULES: tuple[str, ...] = (
    "gridpilot.twin.radial_kernel",
    "gridpilot.control.radial_sweep",
    "gridpilot.control.sections",
    "gridpilot.control.flisr._kernels",
)


def _dispatchers(module: str) -> list[Any]:
    """The ``@njit(cache=True)`` dispatchers defined in ``module`` (imported here)."""
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return []
    return [
        obj
        for obj in vars(mod).values()
        if getattr(obj, "_cache", None) is not None
        and getattr(obj, "__module__", None) == module
        and hasattr(obj._cache, "_cache_file")
    ]


def _has_cached_code(dispatcher: Any) -> bool | None:
    """Whether numba's on-disk index for ``dispatcher`` holds code for the current source
    (numba itself decides freshness: a hash of the source in 0.68). None when unknown."""
    try:
        return bool(dispatcher._cache._cache_file._load_index())
    except Exception as exc:  # numba internals moved: say nothing rather than guess
        log.debug("numba cache check unavailable for %r: %s", dispatcher, exc)
        return None


def cold_modules(modules: Sequence[str] = KERNEL_MODULES) -> list[str]:
    """The modules in ``modules`` having a cached kernel whose on-disk cache holds no code for
    the current source, so its first call compiles (imports the modules to ask numba).

    Returns [] when ``NUMBA_DISABLE_JIT`` is set, and leaves out modules that cannot be
    imported or whose cache numba does not let us read.
    """
    if os.environ.get("NUMBA_DISABLE_JIT"):
        return []
    cold: list[str] = []
    for module in modules:
        if any(_has_cached_code(d) is False for d in _dispatchers(module)):
            cold.append(module)
    return cold


@contextmanager
def compile_notice(
    modules: Sequence[str] = KERNEL_MODULES, stream: TextIO | None = None
) -> Iterator[bool]:
    """While the body runs, tell the user that kernels compile once (spinner on a terminal,
    one line otherwise, nothing when the cache is warm). Yields whether the cache was cold."""
    out = sys.stderr if stream is None else stream
    cold = cold_modules(modules)
    if not cold:
        yield False
        return
    log.info("numba cache cold for %s", ", ".join(cold))
    text = "compiling numba kernels (once, about a minute; `gridpilot warmup` does it ahead)…"
    if out.isatty():
        from rich.console import Console

        with Console(file=out).status(text):
            yield True
        return
    print(text, file=out, flush=True)
    yield True
