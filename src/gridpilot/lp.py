"""A small sparse LP builder on HiGHS (highspy): variable blocks, ranged rows, named groups.

Rows are added as COO triplets per named group, so an infeasible or slack-using solution can
be traced back to a constraint group ("voltage band", "line 12 rating", ...).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from dataclasses import dataclass, field

import highspy
import numpy as np
from scipy.sparse import coo_matrix

from gridpilot.errors import InfeasibleError

log = logging.getLogger(__name__)

INF = highspy.kHighsInf
_BANNER_LOCK = threading.Lock()
_banner_shown = False


def _log_enabled() -> bool:
    """HiGHS's own log is on only when ``GRIDPILOT_LP_LOG`` is set (for debugging a model)."""
    return bool(os.environ.get("GRIDPILOT_LP_LOG"))


def silence_banner() -> None:
    """Build the process's first HiGHS instance with stdout on /dev/null (unless logging).

    HiGHS prints its copyright banner to the C-level stdout when the first instance of a
    process is built, before any option can be set; that one construction runs with file
    descriptor 1 pointed at /dev/null, so CLI output and ``--json`` stay clean. Later calls
    return at once. Also for code that reaches HiGHS through linopy.
    """
    global _banner_shown
    with _BANNER_LOCK:
        if _banner_shown or _log_enabled():
            _banner_shown = True
            return
        sys.stdout.flush()
        saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 1)
            highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(devnull)
        _banner_shown = True


def new_highs() -> highspy.Highs:
    """A HiGHS instance with its console output off unless ``GRIDPILOT_LP_LOG`` is set."""
    silence_banner()
    h = highspy.Highs()
    h.setOptionValue("output_flag", _log_enabled())
    return h


@dataclass
class LP:
    """Columns with bounds and costs; ranged rows ``lo <= A x <= hi`` in named groups."""

    lb: list[np.ndarray] = field(default_factory=list)
    ub: list[np.ndarray] = field(default_factory=list)
    cost: list[np.ndarray] = field(default_factory=list)
    n: int = 0
    rows: list[np.ndarray] = field(default_factory=list)
    cols: list[np.ndarray] = field(default_factory=list)
    vals: list[np.ndarray] = field(default_factory=list)
    rlo: list[np.ndarray] = field(default_factory=list)
    rhi: list[np.ndarray] = field(default_factory=list)
    m: int = 0
    groups: dict[str, tuple[int, int]] = field(default_factory=dict)
    blocks: dict[str, tuple[int, tuple[int, ...]]] = field(default_factory=dict)
    solver: str = "ipm"

    def var(
        self,
        name: str,
        shape: tuple[int, ...],
        lb: float | np.ndarray = 0.0,
        ub: float | np.ndarray = INF,
        cost: float | np.ndarray = 0.0,
    ) -> np.ndarray:
        """Add a block of variables; returns their column indices shaped ``shape``."""
        size = int(np.prod(shape))
        idx = np.arange(self.n, self.n + size).reshape(shape)
        lo = np.broadcast_to(np.asarray(lb, np.float64), shape).ravel().copy()
        hi = np.broadcast_to(np.asarray(ub, np.float64), shape).ravel().copy()
        lo[~np.isfinite(lo)] = -INF
        hi[~np.isfinite(hi)] = INF
        self.lb.append(lo)
        self.ub.append(hi)
        self.cost.append(np.broadcast_to(np.asarray(cost, np.float64), shape).ravel().copy())
        self.blocks[name] = (self.n, shape)
        self.n += size
        return idx

    def rows_add(  # noqa: PLR0913
        self,
        group: str,
        n_rows: int,
        r: np.ndarray,
        c: np.ndarray,
        v: np.ndarray,
        lo: float | np.ndarray,
        hi: float | np.ndarray,
    ) -> np.ndarray:
        """Add ``n_rows`` rows (local row numbers ``r``, columns ``c``, values ``v``); returns row indices."""
        self.rows.append(np.asarray(r, np.int64).ravel() + self.m)
        self.cols.append(np.asarray(c, np.int64).ravel())
        self.vals.append(np.asarray(v, np.float64).ravel())
        lo_a = np.broadcast_to(np.asarray(lo, np.float64), (n_rows,)).copy()
        hi_a = np.broadcast_to(np.asarray(hi, np.float64), (n_rows,)).copy()
        lo_a[~np.isfinite(lo_a)] = -INF
        hi_a[~np.isfinite(hi_a)] = INF
        self.rlo.append(lo_a)
        self.rhi.append(hi_a)
        a = self.m
        self.m += n_rows
        prev = self.groups.get(group)
        self.groups[group] = (a if prev is None else prev[0], self.m)
        return np.arange(a, self.m)

    def value(self, x: np.ndarray, name: str) -> np.ndarray:
        """The solution of block ``name`` in its shape."""
        start, shape = self.blocks[name]
        return x[start : start + int(np.prod(shape))].reshape(shape)

    def to_highs(
        self, time_limit_s: float = 120.0, basis: highspy.HighsBasis | None = None
    ) -> highspy.Highs:
        """The LP as a HiGHS instance ready to run (column-wise sparse matrix, options set).

        ``basis``: a valid basis of an LP with the same columns and rows (e.g. the previous
        solve's, after only bounds or costs changed): the run then starts the simplex method
        from it (a warm start) instead of running ``solver`` from scratch. A basis of other
        dimensions or an invalid one is ignored."""
        a = coo_matrix(
            (
                np.concatenate(self.vals) if self.vals else np.zeros(0),
                (
                    np.concatenate(self.rows) if self.rows else np.zeros(0, np.int64),
                    np.concatenate(self.cols) if self.cols else np.zeros(0, np.int64),
                ),
            ),
            shape=(self.m, self.n),
        ).tocsc()
        a.sum_duplicates()
        lp = highspy.HighsLp()
        lp.num_col_ = self.n
        lp.num_row_ = self.m
        lp.col_cost_ = np.concatenate(self.cost)
        lp.col_lower_ = np.concatenate(self.lb)
        lp.col_upper_ = np.concatenate(self.ub)
        lp.row_lower_ = np.concatenate(self.rlo) if self.rlo else np.zeros(0)
        lp.row_upper_ = np.concatenate(self.rhi) if self.rhi else np.zeros(0)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = a.indptr.astype(np.int32)
        lp.a_matrix_.index_ = a.indices.astype(np.int32)
        lp.a_matrix_.value_ = a.data
        h = new_highs()
        h.setOptionValue("time_limit", float(time_limit_s))
        h.setOptionValue("solver", self.solver)
        h.passModel(lp)
        if (
            basis is not None
            and basis.valid
            and len(basis.col_status) == self.n
            and len(basis.row_status) == self.m
        ):
            h.setOptionValue("solver", "simplex")
            h.setBasis(basis)
        return h

    def solve(
        self, time_limit_s: float = 120.0, h: highspy.Highs | None = None
    ) -> tuple[np.ndarray, float]:
        """Solve with HiGHS (``h`` from :meth:`to_highs`, built here if not given); returns (x, objective).

        Raises InfeasibleError if infeasible."""
        h = self.to_highs(time_limit_s) if h is None else h
        h.run()
        status = h.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            log.info(
                "LP of %d columns, %d rows ended with %s",
                self.n,
                self.m,
                h.modelStatusToString(status),
            )
            raise InfeasibleError(
                f"schedule: the optimisation ended with status {h.modelStatusToString(status)}",
                binding=self._guess_binding(h),
            )
        sol = h.getSolution()
        return np.asarray(sol.col_value), float(h.getInfo().objective_function_value)

    def _guess_binding(self, h: highspy.Highs) -> str:
        """Name the row group with the largest dual ray / infeasibility (best effort)."""
        try:
            ok, ray = h.getDualRay()  # type: ignore[attr-defined]  # in highspy, not in its stubs
            if ok:
                ray = np.abs(np.asarray(ray))
                k = int(np.argmax(ray))
                for name, (a, b) in self.groups.items():
                    if a <= k < b:
                        return name
        except Exception:  # the ray is optional information
            pass
        return "unknown"
