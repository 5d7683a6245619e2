"""Short-circuit faults on an unbalanced feeder: three-phase and single-phase-to-ground.

A :class:`Fault` sits at the far terminal (``t2``) of a line and is checked against the
line's conductors (a phase the line does not carry is a named error). :func:`fault_study`
computes the fault currents per phase from the network itself: the Thevenin (Z-bus) matrix
at the fault's node-phases, taken from the energised part's factorised admittance matrix
(loads as their nominal admittance), and the pre-fault voltages of the switch state:

``I_f = (Z_ff + R_f·1)⁻¹ · V_pf[f]``,  ``V = V_pf − Z[:, f] · I_f``.

The post-fault node voltages give every branch conductor's current during the fault, which
is what fault indicators, fuses and reclosers see (``gridpilot.field.protection3p``).
A three-phase fault is bolted phase-to-phase-to-ground (as OpenDSS's default 3-phase
``Fault`` element).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from gridpilot.errors import UnknownComponentError, ValidationError
from gridpilot.model.threephase import Branch, ThreePhaseGrid
from gridpilot.twin.unbalanced.topology import SwitchedResult, SwitchingSolver

log = logging.getLogger(__name__)

PHASE_LETTERS = {"a": 1, "b": 2, "c": 3, "1": 1, "2": 2, "3": 3}


@dataclass(frozen=True)
class Fault:
    """A fault at the far end (``t2``) of line ``element``: ``kind`` ``"3ph"`` or ``"slg"``
    (single-phase-to-ground on ``phase`` 1, 2 or 3), through ``r_ohm`` (ohm) per phase;
    ``permanent`` False for a temporary (arcing) fault that a reclose clears."""

    element: str
    kind: str = "3ph"
    phase: int | None = None
    r_ohm: float = 0.0
    permanent: bool = True

    @classmethod
    def parse(cls, element: str, spec: str, r_ohm: float = 0.0) -> Fault:
        """A fault from the CLI spelling: ``3ph``, ``slg:a`` (``a``/``b``/``c`` or 1-3).
        Raises :class:`ValidationError` naming the value otherwise."""
        text = spec.strip().lower()
        if text in ("3ph", "3p", "abc"):
            return cls(element, "3ph", None, r_ohm)
        kind, _, ph = text.partition(":")
        if kind != "slg" or ph not in PHASE_LETTERS:
            raise ValidationError(
                f"fault: expected '3ph' or 'slg:a' (phase a, b, c or 1-3), got {spec!r}"
            )
        return cls(element, "slg", PHASE_LETTERS[ph], r_ohm)

    def describe(self) -> str:
        """Short text, e.g. ``slg:b on l35``."""
        what = "3ph" if self.kind == "3ph" else f"slg:{'abc'[int(self.phase or 1) - 1]}"
        return f"{what} on {self.element}"


def fault_branch(grid: ThreePhaseGrid, fault: Fault) -> Branch:
    """The line a fault sits on, after checking the fault against it: a known enabled line
    (not a switch), a known kind, a phase the line carries, a resistance ≥ 0.
    Raises :class:`UnknownComponentError` / :class:`ValidationError` naming element and value."""
    key = fault.element.lower()
    br = next((b for b in grid.branches if b.name.lower() == key and b.enabled), None)
    if br is None:
        raise UnknownComponentError("line", fault.element)
    if fault.kind not in ("3ph", "slg"):
        raise ValidationError(
            f"fault on {br.name}: kind must be '3ph' or 'slg', got {fault.kind!r}"
        )
    if not np.isfinite(fault.r_ohm) or fault.r_ohm < 0:
        raise ValidationError(f"fault on {br.name}: r_ohm must be >= 0, got {fault.r_ohm!r}")
    phases = [k for k in br.t2.nodes if k > 0]
    if fault.kind == "slg" and fault.phase not in phases:
        letters = "".join("abc"[k - 1] for k in phases if k <= 3)
        raise ValidationError(
            f"fault on line {br.name}: phase {fault.phase!r} is not on this line "
            f"(it carries phase(s) {letters or phases})"
        )
    return br


@dataclass
class FaultStudy:
    """A solved fault: ``i_fault_a`` per faulted phase (A, complex), the node voltages
    during the fault (V), each branch conductor's current during the fault (A, same rows
    as ``prefault.result.branch_i_a``) and the pre-fault state it started from."""

    fault: Fault
    nodes: list[tuple[str, int]]
    fault_nodes: list[str]
    i_fault_a: np.ndarray
    v_fault: np.ndarray
    branch_i_a: np.ndarray
    prefault: SwitchedResult

    @property
    def i_fault_max_a(self) -> float:
        """Largest faulted-phase current magnitude (A)."""
        return float(np.abs(self.i_fault_a).max()) if self.i_fault_a.size else 0.0

    def branch_currents(self, name: str) -> np.ndarray:
        """Per-conductor current magnitudes (A) of branch ``name`` during the fault."""
        meta = self.prefault.result.branch_meta
        rows = [i for i, m in enumerate(meta) if m[0].lower() == name.lower()]
        return np.abs(self.branch_i_a[rows])

    def summary(self) -> dict[str, object]:
        """Plain-JSON headline: fault, per-phase current (A) at each faulted node-phase."""
        return {
            "fault": self.fault.describe(),
            "i_fault_a": {
                n: round(float(abs(i)), 1)
                for n, i in zip(self.fault_nodes, self.i_fault_a, strict=True)
            },
        }


def fault_study(
    solver: SwitchingSolver,
    fault: Fault,
    closed: Mapping[str, bool] | None = None,
    prefault: SwitchedResult | None = None,
) -> FaultStudy:
    """Fault currents per phase and the network during ``fault`` for switch state
    ``closed`` (see the module docstring). Raises :class:`ValidationError` when the fault's
    node-phases are not energised."""
    br = fault_branch(solver.grid, fault)
    pre = prefault if prefault is not None else solver.solve(closed)
    index = solver.net.index
    phases = [k for k in br.t2.nodes if k > 0 and k <= 3]
    if fault.kind == "slg":
        phases = [int(fault.phase or 0)]
    f = np.array([index[(br.t2.bus, k)] for k in phases], np.int64)
    if not pre.energised[f].all():
        raise ValidationError(f"fault on line {br.name}: bus {br.t2.bus} is not energised")
    fac, _ = solver.factor(closed)
    e = np.zeros((solver.net.n, len(f)), complex)
    e[f, np.arange(len(f))] = 1.0
    z = fac.solve(e)  # Z[:, f] (ohm)
    zff = z[f]
    v_pf = pre.result.v
    i_f = np.linalg.solve(zff + fault.r_ohm * np.eye(len(f)), v_pf[f])
    v = v_pf - z @ i_f
    rows = solver.net.branch_rows
    i_br = rows @ v if rows is not None else np.zeros(0, complex)
    open_rows = np.array(
        [not solver.state(closed).get(m[0].lower(), True) for m in pre.result.branch_meta], bool
    )
    i_br = np.where(open_rows, 0.0, i_br)
    names = [f"{br.t2.bus}.{k}" for k in phases]
    log.debug("%s: %s A", fault.describe(), np.abs(i_f).round(1))
    return FaultStudy(fault, solver.nodes, names, i_f, v, i_br, pre)
