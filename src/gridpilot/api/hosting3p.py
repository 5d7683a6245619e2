"""Hosting capacity for the dashboard's map: read from the table ``gridpilot hosting-capacity``
wrote (``<dir>/<grid>_<der>_hosting.csv``), else computed on the first request in a
background process and cached (``ieee8500`` takes minutes; the answer says ``computing``
meanwhile). A child process, not a thread: the server stays responsive, and a server that
stops mid-study ends it (a daemon thread still inside the study at interpreter exit made the
process exit with status 120). Per-phase kW arrays in the order of the feeder geometry's buses."""

from __future__ import annotations

import logging
import multiprocessing as mp
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gridpilot.api.feeder3p import Geometry, _r
from gridpilot.errors import ValidationError
from gridpilot.model.threephase import ThreePhaseGrid

log = logging.getLogger(__name__)

DERS = ("pv", "ev")


def table_path(folder: Path, grid: str, der: str) -> Path:
    """Where ``gridpilot hosting-capacity GRID --der DER --out FOLDER`` writes its table."""
    return folder / f"{grid}_{der}_hosting.csv"


def compute_table(grid: ThreePhaseGrid, der: str) -> tuple[pd.DataFrame, float]:
    """The study as the CLI runs it (critical hours of a year of 15-minute profiles, default
    options): its table and wall seconds."""
    from gridpilot.twin.hosting import (
        HostingOptions,
        clear_sky_pv,
        critical_scenarios,
        hosting_capacity,
    )
    from gridpilot.twin.hosting.profiles import feeder_load_profile

    load = feeder_load_profile(grid)
    res = hosting_capacity(
        grid, critical_scenarios(load, clear_sky_pv(len(load)), der), HostingOptions(der=der)
    )
    return res.table(), res.elapsed_s


def _study_child(grid: ThreePhaseGrid, der: str, conn: Any) -> None:
    """Child process: the study, its (table, seconds) or ``("error", text)`` sent back."""
    try:
        conn.send(compute_table(grid, der))
    except Exception as exc:  # sent to the parent, which reports it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


class StudyInterrupted(RuntimeError):
    """The study's process was stopped (a signal, or the server shutting down) before it
    answered: not a failure of the study."""


def compute_in_child(
    grid: ThreePhaseGrid, der: str, target: Callable[..., None] | None = None
) -> tuple[pd.DataFrame, float]:
    """:func:`compute_table` in a daemon child process (spawned: no forked server threads);
    a failure there is raised here as a :class:`RuntimeError` with its text, a child stopped
    by a signal as :class:`StudyInterrupted`. ``target``: the child's function (tests)."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=target or _study_child, args=(grid, der, child), daemon=True)
    proc.start()
    child.close()
    try:
        out = parent.recv()
    except EOFError:
        proc.join(timeout=5)
        code = proc.exitcode
        if code is None or code < 0:  # killed (a signal, or the server stopping): no failure
            raise StudyInterrupted(f"hosting study process stopped (exit code {code})") from None
        raise RuntimeError(f"hosting study process ended (exit code {code})") from None
    finally:
        proc.join(timeout=5)
    if isinstance(out[0], str):
        raise RuntimeError(out[1])
    return out


def hosting_payload(g: Geometry, table: pd.DataFrame) -> dict[str, Any]:
    """Per-phase hosting capacity (kW, ``null`` where the bus lacks the phase or was not
    studied), each bus's smallest over its phases and the check that bound it (an index into
    ``limit_names``; -1 where none)."""
    nb = len(g.buses)
    hc = np.full((3, nb), np.nan)
    lim = np.full((3, nb), "", dtype=object)
    for bus, ph, kw, why in zip(
        table["bus"].astype(str),
        table["phase"],
        table["hc_kw"],
        table["limit"].fillna(""),
        strict=True,
    ):
        j = g.index.get(bus)
        if j is not None and 1 <= int(ph) <= 3:
            hc[int(ph) - 1, j], lim[int(ph) - 1, j] = float(kw), str(why)
    has = np.isfinite(hc).any(axis=0)
    low = np.where(has, np.nanargmin(np.where(np.isfinite(hc), hc, np.inf), axis=0), 0)
    names = sorted({str(x) for x in lim.ravel() if x})
    code = {n: i for i, n in enumerate(names)}
    bus_lim = [code.get(str(lim[low[j], j]), -1) if has[j] else -1 for j in range(nb)]
    return {
        "hc_kw": [_r(h, 1) for h in hc],
        "min_kw": _r(np.where(has, hc[low, np.arange(nb)], np.nan), 1),
        "limit": bus_lim,
        "limit_names": names,
    }


class HostingCache:
    """Hosting tables per DER for one feeder: from ``folder`` if the CLI wrote one there,
    else computed once in the background."""

    def __init__(self, grid: ThreePhaseGrid, folder: Path | None = None) -> None:
        self.grid, self.folder = grid, folder
        self._lock = threading.Lock()
        self._tables: dict[str, tuple[pd.DataFrame, str, float]] = {}
        self._running: dict[str, threading.Thread] = {}
        self._failed: dict[str, str] = {}

    def state(self, der: str) -> tuple[str, tuple[pd.DataFrame, str, float] | None, str]:
        """(``ready`` | ``computing`` | ``failed``, (table, origin, seconds) or None, error)."""
        if der not in DERS:
            raise ValidationError(f"der must be one of {DERS}, got {der!r}")
        with self._lock:
            if der in self._tables:
                return "ready", self._tables[der], ""
            if der in self._failed:
                return "failed", None, self._failed[der]
            path = table_path(self.folder, self.grid.name, der) if self.folder else None
            if path is not None and path.is_file():
                t0 = time.perf_counter()
                self._tables[der] = (pd.read_csv(path), f"file {path.name}", 0.0)
                log.info("hosting table %s read in %.2f s", path, time.perf_counter() - t0)
                return "ready", self._tables[der], ""
            if der not in self._running:
                th = threading.Thread(target=self._compute, args=(der,), daemon=True)
                self._running[der] = th
                th.start()
            return "computing", None, ""

    def _compute(self, der: str) -> None:
        try:
            table, secs = compute_in_child(self.grid, der)
        except StudyInterrupted as exc:  # the server (or its test) is stopping
            log.info("hosting study of %s (%s) stopped: %s", self.grid.name, der, exc)
            with self._lock:
                self._failed[der] = f"stopped before it finished: {exc}"
                self._running.pop(der, None)
            return
        except Exception as exc:  # said in the answer, not lost in a thread
            log.exception("hosting capacity of %s (%s) failed", self.grid.name, der)
            with self._lock:
                self._failed[der] = f"{type(exc).__name__}: {exc}"
                self._running.pop(der, None)
            return
        with self._lock:
            self._tables[der] = (table, "computed", secs)
            self._running.pop(der, None)

    def wait(self, der: str, timeout_s: float) -> str:
        """Block until ``der``'s table is ready or failed (for tests and the CLI); its state."""
        st = self.state(der)[0]
        th = self._running.get(der)
        if st == "computing" and th is not None:
            th.join(timeout_s)
        return self.state(der)[0]
