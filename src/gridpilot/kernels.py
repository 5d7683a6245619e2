"""The package's numba kernels: is their on-disk cache warm, and a notice while they compile.

numba compiles each ``@njit(cache=True)`` kernel on its first call in a fresh installation (about
a minute for all of gridpilot's on 2 cores) and caches the machine code beside the source, in
``__pycache__`` (or ``NUMBA_CACHE_DIR``), valid while the source is unchanged. This module asks
numba's cache index which kernel modules would compile on first call, so the CLI can say
"compiling kernels (once)" instead of sitting silent; ``gridpilot warmup`` (run by ``make``)
fills the cache ahead of time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

log = logging.getLogger(__name__)

_PACKAGE_ROOT = Path(__file__).resolve().parent


def discover_kernel_modules(
    root: Path = _PACKAGE_ROOT, package: str = "gridpilot"
) -> tuple[str, ...]:
    """Dotted names of the modules under ``root`` whose source has a cached numba kernel
    (``@njit(...cache=True...)``); a text scan, nothing imported (a few ms)."""
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if "njit(" in text and "cache=True" in text and path.name != "kernels.py":
            rel = path.relative_to(root).with_suffix("")
            found.append(".".join((package, *rel.parts)))
    return tuple(found)


KERNEL_MODULES: tuple[str, ...] = discover_kernel_modules()

_RADIAL = ("gridpilot.twin.radial_kernel",)
_UNBALANCED = ("gridpilot.twin.unbalanced.loads", "gridpilot.twin.unbalanced.trisolve")
_SWITCHING = (
    *_RADIAL,
    "gridpilot.control.radial_sweep",
    "gridpilot.control.sections",
    "gridpilot.control.flisr._kernels",
)
# the kernel modules each CLI command may call (the notice asks numba only about those, so a
# balanced power flow does not import the unbalanced solver or FLISR to check their cache);
# the loop's commands (demo, serve, scenario) run every kind of grid and control: all of them
COMMAND_KERNELS: dict[str, tuple[str, ...]] = {
    "powerflow": _RADIAL,
    "timeseries": _RADIAL,
    "qsts": _UNBALANCED,
    "hosting-capacity": (*_RADIAL, *_UNBALANCED),
    "cvr": (*_RADIAL, *_UNBALANCED),
    "estimate": (*_RADIAL, *_UNBALANCED),
    "flisr": _SWITCHING,
    "reconfigure": _SWITCHING,
    "field": _RADIAL,
    "flex": (*_RADIAL, *_UNBALANCED),  # also on three-phase feeders (flex/phase_cli.py)
    "demo": KERNEL_MODULES,
    "serve": KERNEL_MODULES,
    "scenario": KERNEL_MODULES,
}


def _module_file(module: str) -> Path:
    return _PACKAGE_ROOT.joinpath(*module.split(".")[1:]).with_suffix(".py")


def _cache_files(files: Sequence[Path]) -> list[Path]:
    """numba's index and data files of the kernels in ``files`` (beside each source in
    ``__pycache__``, or anywhere under ``NUMBA_CACHE_DIR``)."""
    stems = {f.stem for f in files}
    roots = {f.parent / "__pycache__" for f in files}
    if os.environ.get("NUMBA_CACHE_DIR"):
        roots.add(Path(os.environ["NUMBA_CACHE_DIR"]))
    out = []
    for root in roots:
        if root.is_dir():
            out += [p for p in root.rglob("*.nb[ic]") if p.name.split(".", 1)[0] in stems]
    return out


def invalidate_stale_caches(files: Sequence[Path] | None = None, stamp: Path | None = None) -> bool:
    """Drop every kernel's numba cache when any kernel module's source changed since the
    caches were written. numba checks only the source file of the kernel it caches, so a
    kernel compiled together with kernels it calls from another module (the compiled QSTS
    step calling the control kernels) would otherwise keep running their old code. Returns
    whether caches were dropped; the fingerprint (SHA-256 of the sources) is kept in
    ``stamp`` (default ``__pycache__/gridpilot-kernels.sha256`` in the package)."""
    files = [_module_file(m) for m in KERNEL_MODULES] if files is None else list(files)
    stamp = _PACKAGE_ROOT / "__pycache__" / "gridpilot-kernels.sha256" if stamp is None else stamp
    digest = hashlib.sha256()
    for f in sorted(files):
        digest.update(f.name.encode() + b"\0" + f.read_bytes())
    fp = digest.hexdigest()
    try:
        if stamp.exists() and stamp.read_text().strip() == fp:
            return False
        dropped = _cache_files(files)
        for p in dropped:
            p.unlink(missing_ok=True)
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(fp + "\n")
    except OSError as exc:  # a read-only installation: numba's own checks only
        log.debug("kernel cache stamp %s not written: %s", stamp, exc)
        return False
    if dropped:
        log.info("kernel sources changed: %d numba cache files dropped", len(dropped))
    return bool(dropped)


_CHECKED: list[bool] = []


def check_caches_once() -> None:
    """``invalidate_stale_caches`` once per process, before a kernel that inlines kernels of
    other modules is first loaded (the compiled QSTS step): a checkout updated in place (``git
    pull``, a merge) changes only some sources, and numba would keep the old inlined code."""
    if not _CHECKED:
        _CHECKED.append(True)
        invalidate_stale_caches()


def command_kernels(command: str) -> tuple[str, ...]:
    """The kernel modules the CLI command ``command`` may compile on its first run (empty for
    a command that calls no kernel)."""
    return COMMAND_KERNELS.get(command, ())


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
    invalidate_stale_caches()
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
