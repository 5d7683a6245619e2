"""Import MATPOWER case files (``.m``, case format version 2).

Reads ``mpc.baseMVA``, ``mpc.bus``, ``mpc.gen`` and ``mpc.branch``. MATPOWER's distribution
cases (case33bw, case69, case85, case141) give branch r, x in ohms and loads in kW and convert
them with two code lines at the end of the file; those documented idioms are recognised
(``/ (Vbase^2 / Sbase)`` and ``/ 1e3`` on PD, QD) and applied, nothing else is executed.

Mapping: the reference bus's generator becomes the source (at its Vg); other generators become
PQ generators at Pg, Qg (the twin's engine has no PV buses); bus Pd, Qd become loads; branches
with a tap ratio or between different base voltages become transformers, the others lines of
1 km. Ids are MATPOWER's bus numbers and 1-based row numbers of branches, gens and loads.

Switches: MATPOWER has no switch data. The distribution reconfiguration cases (case33bw and
the like) mark their normally-open ties as branches with status 0 and treat every branch as
switchable, so with ``switches="auto"`` (the default) a case that has status-0 *lines* gets a
remote switch on every line (id = branch row, at the from-bus; a breaker where the line leaves
a source bus, load-break elsewhere): the status-0 lines are put in service behind an open,
normally-open switch (a tie), the others behind a closed one. A case without status-0 lines
gets no switches (its status-0 transformers stay out of service): such a grid cannot be
switched, and ``reconfigure``/``flisr`` say so. ``switches="all"`` always adds them, ``"none"``
never (status-0 lines then stay out of service).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gridpilot.errors import Issue, ValidationError
from gridpilot.model.grid import Grid
from gridpilot.model.schema import GenKind
from gridpilot.model.table import Table


@dataclass
class MatpowerCase:
    """The raw matrices of a MATPOWER case (after the recognised unit conversions)."""

    name: str
    base_mva: float
    bus: np.ndarray
    gen: np.ndarray
    branch: np.ndarray
    notes: list[str]


def _matrix(text: str, key: str, source: str) -> np.ndarray:
    m = re.search(rf"mpc\.{key}\s*=\s*\[(.*?)\]\s*;", text, re.S)
    if not m:
        raise ValidationError(issues=[Issue("matpower", key, "matrix not found", value=source)])
    rows = []
    for line in re.split(r"[;\n]", m.group(1)):
        line = line.split("%", 1)[0].strip()
        if not line:
            continue
        try:
            rows.append([float(v) for v in line.replace(",", " ").split()])
        except ValueError:
            raise ValidationError(
                issues=[
                    Issue("matpower", key, f"row {len(rows) + 1} is not numeric", value=line[:60])
                ]
            ) from None
    width = {len(r) for r in rows}
    if len(width) > 1:
        raise ValidationError(
            issues=[Issue("matpower", key, f"rows have different lengths {sorted(width)}")]
        )
    return np.array(rows, dtype=np.float64)


def parse_matpower(text: str, name: str = "matpower") -> MatpowerCase:
    """Parse the text of a MATPOWER case into its matrices (units: MW, Mvar, p.u.)."""
    notes: list[str] = []
    base = re.search(r"mpc\.baseMVA\s*=\s*([0-9.eE+-]+)", text)
    if not base:
        raise ValidationError(issues=[Issue("matpower", "baseMVA", "not found", value=name)])
    base_mva = float(base.group(1))
    bus = _matrix(text, "bus", name)
    gen = _matrix(text, "gen", name)
    branch = _matrix(text, "branch", name)
    if bus.shape[1] < 13 or branch.shape[1] < 11 or gen.shape[1] < 8:
        raise ValidationError(
            issues=[Issue("matpower", "bus", "too few columns for case format 2")]
        )
    code = "\n".join(ln.split("%", 1)[0] for ln in text.splitlines())
    if re.search(r"mpc\.branch\(:,\s*\[BR_R BR_X\]\)\s*=.*?/\s*\(Vbase\^2\s*/\s*Sbase\)", code):
        vbase = bus[0, 9] * 1e3
        z_base = vbase**2 / (base_mva * 1e6)
        branch[:, 2:4] /= z_base
        notes.append("branch r, x converted from ohms (case's own conversion)")
    if re.search(r"mpc\.bus\(:,\s*\[PD,\s*QD\]\)\s*=.*?/\s*1e3", code):
        bus[:, 2:4] /= 1e3
        notes.append("loads converted from kW (case's own conversion)")
    return MatpowerCase(name, base_mva, bus, gen, branch, notes)


SWITCH_MODES = ("auto", "all", "none")


def from_matpower(
    path_or_text: str | Path, name: str | None = None, switches: str = "auto"
) -> Grid:
    """Read a MATPOWER ``.m`` file (a path, or the text itself) into a validated :class:`Grid`.

    ``switches``: ``"auto"`` (a switch on every line when the case has status-0 lines, which
    become open ties), ``"all"`` or ``"none"``; see the module docstring.
    """
    if switches not in SWITCH_MODES:
        raise ValidationError(
            issues=[Issue("matpower", "switches", f"choose one of {SWITCH_MODES}", value=switches)]
        )
    p = (
        Path(path_or_text)
        if not str(path_or_text).lstrip().startswith(("function", "%", "mpc"))
        else None
    )
    if p is not None:
        if not p.exists():
            raise ValidationError(issues=[Issue("file", "path", "does not exist", value=str(p))])
        text = p.read_text()
        name = name or p.stem
    else:
        text = str(path_or_text)
    case = parse_matpower(text, name or "matpower")
    return case_to_grid(case, switches)


def _check_bus_refs(ids: np.ndarray, branch: np.ndarray, gen: np.ndarray) -> None:
    """Every branch end and generator must name a bus of ``mpc.bus`` (all problems at once)."""
    known = set(ids.tolist())
    issues = []
    for col, field in ((0, "f_bus"), (1, "t_bus")):
        bad = [i for i, b in enumerate(branch[:, col].astype(np.int64).tolist()) if b not in known]
        if bad:
            issues.append(
                Issue(
                    "branch",
                    field,
                    "unknown bus (not in mpc.bus)",
                    tuple(i + 1 for i in bad[:10]),
                    int(branch[bad[0], col]),
                )
            )
    bad = [i for i, b in enumerate(gen[:, 0].astype(np.int64).tolist()) if b not in known]
    if bad:
        issues.append(
            Issue(
                "gen",
                "bus",
                "unknown bus (not in mpc.bus)",
                tuple(i + 1 for i in bad[:10]),
                int(gen[bad[0], 0]),
            )
        )
    if issues:
        raise ValidationError(issues=issues)


def _check_base_kv(ids: np.ndarray, kv: np.ndarray) -> None:
    """Raise a :class:`ValidationError` naming the buses whose base kV is not positive."""
    if np.any(kv <= 0):
        bad = ids[kv <= 0]
        raise ValidationError(
            issues=[
                Issue(
                    "bus",
                    "baseKV",
                    "must be positive",
                    tuple(int(i) for i in bad[:10]),
                    float(kv[kv <= 0][0]),
                )
            ]
        )


def _injection_tables(bus: np.ndarray, gen: np.ndarray, ids: np.ndarray) -> dict[str, Table]:
    """The source (in-service generators at reference buses), generator and load tables."""
    tables: dict[str, Table] = {}
    ref = bus[:, 1] == 3
    ref_ids = set(ids[ref].tolist())
    gon = gen[:, 7] > 0
    is_src = np.array([int(b) in ref_ids for b in gen[:, 0]]) & gon
    if not np.any(is_src):
        raise ValidationError(
            issues=[
                Issue("matpower", "bus", "no reference bus (type 3) with an in-service generator")
            ]
        )
    g_ids = np.arange(1, len(gen) + 1)
    tables["source"] = Table.from_columns(
        "source",
        {"id": g_ids[is_src], "bus": gen[is_src, 0].astype(np.int64), "vm_pu": gen[is_src, 5]},
    )
    pq = ~is_src & gon
    if np.any(pq):
        tables["generator"] = Table.from_columns(
            "generator",
            {
                "id": g_ids[pq],
                "bus": gen[pq, 0].astype(np.int64),
                "kind": np.full(pq.sum(), int(GenKind.CONVENTIONAL)),
                "p_mw": np.clip(gen[pq, 1], 0, None),
                "q_mvar": gen[pq, 2],
                "sn_mva": gen[pq, 6],
            },
        )
    has_load = (bus[:, 2] != 0) | (bus[:, 3] != 0)
    tables["load"] = Table.from_columns(
        "load",
        {
            "id": ids[has_load],
            "bus": ids[has_load],
            "p_mw": bus[has_load, 2],
            "q_mvar": bus[has_load, 3],
        },
    )
    return tables


def case_to_grid(case: MatpowerCase, switches: str = "auto") -> Grid:
    """Turn parsed MATPOWER matrices into a :class:`Grid` (``switches`` as in
    :func:`from_matpower`)."""
    bus, gen, br = case.bus, case.gen, case.branch
    ids = bus[:, 0].astype(np.int64)
    _check_bus_refs(ids, br, gen)
    kv = bus[:, 9]
    _check_base_kv(ids, kv)
    tables = {"bus": Table.from_columns("bus", {"id": ids, "v_nom_kv": kv, "zone": bus[:, 10]})}
    kv_of = dict(zip(ids.tolist(), kv.tolist(), strict=True))
    f, t = br[:, 0].astype(np.int64), br[:, 1].astype(np.int64)
    ratio = br[:, 8]
    fkv = np.array([kv_of.get(int(i), np.nan) for i in f])
    tkv = np.array([kv_of.get(int(i), np.nan) for i in t])
    is_tr = (ratio != 0) & ~np.isclose(ratio, 1.0) | ~np.isclose(fkv, tkv)
    on = br[:, 10] > 0
    ties = ~on & ~is_tr
    with_switches = switches == "all" or (switches == "auto" and bool(ties.any()))
    if with_switches:
        on = on | ties  # ties are lines in service behind a normally-open switch
    row_ids = np.arange(1, len(br) + 1)
    rate = br[:, 5]
    ln = ~is_tr
    zb = fkv[ln] ** 2 / case.base_mva
    i_ka = np.where(rate[ln] > 0, rate[ln] / (np.sqrt(3) * fkv[ln]), 10.0)
    tables["line"] = Table.from_columns(
        "line",
        {
            "id": row_ids[ln],
            "from_bus": f[ln],
            "to_bus": t[ln],
            "length_km": np.ones(ln.sum()),
            "r_ohm_per_km": br[ln, 2] * zb,
            "x_ohm_per_km": br[ln, 3] * zb,
            "c_nf_per_km": br[ln, 4] / zb / (2 * np.pi * 50.0) * 1e9,
            "max_i_ka": i_ka,
            "in_service": on[ln],
        },
    )
    if np.any(is_tr):
        r, x = br[is_tr, 2], br[is_tr, 3]
        hv_first = fkv[is_tr] >= tkv[is_tr]
        sn = np.where(rate[is_tr] > 0, rate[is_tr], case.base_mva)
        scale = sn / case.base_mva
        tables["transformer"] = Table.from_columns(
            "transformer",
            {
                "id": row_ids[is_tr],
                "hv_bus": np.where(hv_first, f[is_tr], t[is_tr]),
                "lv_bus": np.where(hv_first, t[is_tr], f[is_tr]),
                "sn_mva": sn,
                "vn_hv_kv": np.maximum(fkv[is_tr], tkv[is_tr])
                * np.where(ratio[is_tr] > 0, ratio[is_tr], 1.0) ** hv_first,
                "vn_lv_kv": np.minimum(fkv[is_tr], tkv[is_tr]),
                "vk_percent": np.hypot(r, x) * scale * 100,
                "vkr_percent": r * scale * 100,
                "shift_degree": br[is_tr, 9],
                "in_service": on[is_tr],
            },
        )
    tables.update(_injection_tables(bus, gen, ids))
    grid = Grid(case.name, 50.0, tables)
    if with_switches:
        _line_switches(grid, ties[~is_tr])
        sw_note = f"a switch on every line; {int(ties.sum())} status-0 line(s) are open ties"
    else:
        sw_note = "none (MATPOWER has no switch data and the case no status-0 lines)"
    grid.meta.update(
        {
            "source": "matpower",
            "import_notes": case.notes,
            "base_mva": case.base_mva,
            "switches": sw_note,
        }
    )
    grid.validate(raise_on_error=True)
    return grid


def _line_switches(grid: Grid, tie: np.ndarray) -> None:
    """A remote switch with an FPI on every line (id = line id, at its from-bus): open and
    normally open where ``tie``; a breaker where the line touches a source bus."""
    from gridpilot.model.schema import SwitchKind

    ln = grid.line
    src_bus = grid.source["bus"]
    at_src = np.isin(ln["from_bus"], src_bus) | np.isin(ln["to_bus"], src_bus)
    grid.add(
        "switch",
        id=ln.ids,
        bus=ln["from_bus"],
        element=ln.ids,
        et=0,
        kind=np.where(at_src, int(SwitchKind.BREAKER), int(SwitchKind.LOAD_BREAK)),
        closed=~tie,
        normally_open=tie,
        remote=True,
        fpi=True,
    )
