"""CLI helpers of the unbalanced twin: ``powerflow`` on a three-phase grid and ``qsts``."""

from __future__ import annotations

import re
import sys
from typing import Any

from gridpilot.errors import ValidationError
from gridpilot.model.threephase import ThreePhaseGrid

_UNITS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hr": 3600.0}


def parse_resolution(text: str) -> float:
    """``15min``, ``1min``, ``900s``, ``1h`` → seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*", text.lower())
    if not m or m.group(2) not in _UNITS or float(m.group(1)) <= 0:
        raise ValidationError(f"resolution must look like 15min, 1min, 900s or 1h, got {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def powerflow_summary(grid: ThreePhaseGrid, controls: str = "static") -> dict[str, Any]:
    """One unbalanced snapshot's summary (per-phase extremes with node, max unbalance), the
    grid's smart inverters on their curves where it has any enabled InvControl."""
    from gridpilot.twin.unbalanced.inverters import twin_for

    res = twin_for(grid).powerflow(control_mode=controls)
    out = {"grid": grid.name, "model": "unbalanced three-phase", **res.summary()}
    if grid.warnings:
        out["warnings"] = grid.warnings
    return out


def qsts_summary(
    grid: ThreePhaseGrid, steps: int, resolution: str, show_progress: bool
) -> dict[str, Any]:
    """A QSTS run's summary (with the grid's smart inverters on their curves where it has
    any enabled InvControl); a Rich progress bar on a terminal when asked."""
    from gridpilot.twin.unbalanced.inverters import twin_for

    if steps <= 0:
        raise ValidationError(f"steps must be > 0, got {steps}")
    res_s = parse_resolution(resolution)
    twin = twin_for(grid)
    if show_progress and sys.stderr.isatty():
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task(f"{grid.name}: {steps} steps", total=steps)
            res = twin.qsts(steps, res_s, progress=lambda d, t: bar.update(task, completed=d))
    else:
        res = twin.qsts(steps, res_s)
    return {"grid": grid.name, "resolution": resolution, **res.summary(), **_peak_rss()}


def _peak_rss() -> dict[str, float]:
    """The process's peak resident memory (MB), where the platform tells it."""
    try:
        import resource
    except ImportError:  # not on Windows
        return {}
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_rss_mb": round(kb / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)}
