"""CLI start-up: warm command times and the first run after installing (cold numba cache).

Each command runs as a user would type it, in a fresh process (``python -m gridpilot ...``),
``--runs`` times; the wall time of the whole process is measured. Side by side, the floor any
Python CLI pays on this machine: ``python -c pass`` and importing typer + rich.

The first run after ``pip install`` compiles the numba kernels (``make`` does it ahead with
``gridpilot warmup``). It is measured with ``NUMBA_CACHE_DIR`` pointed at an empty folder, which
is what a clean installation starts from: ``powerflow case33bw`` (the twin's kernels) and
``warmup`` (all of them). ``--venv`` also times a fresh venv with ``pip install -e .`` (network
and pip cache dependent; minutes).

    PYTHONPATH=src python bench/cli.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WARM: dict[str, list[str]] = {
    "python -c pass (floor)": ["-c", "pass"],
    "import typer, rich (floor)": ["-c", "import typer, rich"],
    "gridpilot --help": ["-m", "gridpilot", "--help"],
    "gridpilot grids --json": ["-m", "gridpilot", "grids", "--json"],
    "gridpilot powerflow case33bw --json": ["-m", "gridpilot", "powerflow", "case33bw", "--json"],
}
TARGETS_S = {"gridpilot --help": 0.5, "gridpilot powerflow case33bw --json": 1.5}


def _run(args: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, timeout=900, check=False
    )
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({res.returncode}): {res.stderr[-400:]}")
    return wall


def warm_rows(runs: int) -> list[dict[str, Any]]:
    """Median and minimum wall time of each warm command over ``runs`` fresh processes."""
    rows = []
    for name, args in WARM.items():
        _run(args)  # warm the OS file cache and numba's on-disk cache
        walls = [_run(args) for _ in range(runs)]
        target = TARGETS_S.get(name)
        med = statistics.median(walls)
        rows.append(
            {
                "command": name,
                "wall_s_median": round(med, 3),
                "wall_s_min": round(min(walls), 3),
                "target_s": target,
                "meets_target": None if target is None else med < target,
            }
        )
    return rows


def cold_rows() -> list[dict[str, Any]]:
    """First runs with an empty numba cache, as after a clean installation."""
    rows = []
    for name, args in {
        "powerflow case33bw, cold numba cache": ["-m", "gridpilot", "powerflow", "case33bw"],
        "warmup, cold numba cache": ["-m", "gridpilot", "warmup"],
    }.items():
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "NUMBA_CACHE_DIR": cache}
            rows.append({"command": name, "wall_s": round(_run(args, env), 2)})
    return rows


def venv_row() -> dict[str, Any]:
    """A fresh venv and ``pip install -e .`` (what ``make`` does before the warm-up)."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "venv", tmp], check=True)
        pip = [str(Path(tmp) / "bin" / "python"), "-m", "pip", "install", "-q", "-e", str(ROOT)]
        subprocess.run(pip, check=True)
        return {
            "command": "python -m venv + pip install -e .",
            "wall_s": round(time.perf_counter() - t0, 1),
        }


def main() -> None:
    """Print the figures as JSON (or a short table)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--venv", action="store_true", help="also time a fresh venv and install")
    ap.add_argument("--no-cold", action="store_true", help="skip the cold-cache first runs")
    a = ap.parse_args()
    out: dict[str, Any] = {
        "machine": f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start",
        "warm": warm_rows(a.runs),
        "first_run": [] if a.no_cold else cold_rows(),
    }
    if a.venv:
        out["first_run"].append(venv_row())
    if a.json:
        print(json.dumps(out, indent=2))
        return
    for row in out["warm"] + out["first_run"]:
        print(row)


if __name__ == "__main__":
    main()
