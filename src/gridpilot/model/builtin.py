"""Built-in grids, by name: ``gridpilot grids`` lists them.

Numbering of ``case33bw`` and ``case69`` follows the papers: buses 1..33 (1..69), branches
1..37 (1..68) in the papers' order, ties 33..37; each branch of case33bw carries a switch with
the branch's number (1 is the feeder breaker, 33..37 the normally-open ties). Grids built from
pandapower or SimBench are cached as ``.npz`` under the user cache directory
(``GRIDPILOT_CACHE`` overrides it).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from gridpilot.errors import UnknownComponentError, ValidationError
from gridpilot.model.grid import Grid
from gridpilot.model.io import read_grid, write_grid
from gridpilot.model.schema import SCHEMAS, LoadKind, SwitchKind
from gridpilot.model.threephase.grid import ThreePhaseGrid

CASE33_RATING_KA = 0.4  # assumed: Baran & Wu give no ratings (see docs/grids.md)


@dataclass(frozen=True)
class GridInfo:
    """A built-in grid: its name, bus count and a one-line description."""

    name: str
    buses: int | None
    description: str
    nodes: int | None = None  # node-phases, for the unbalanced (three-phase) grids


def _cache_dir() -> Path:
    """``$GRIDPILOT_CACHE``, else ``$XDG_CACHE_HOME/gridpilot``, else ``~/.cache/gridpilot``."""
    env = os.environ.get("GRIDPILOT_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg if xdg else Path.home() / ".cache") / "gridpilot"


def _schema_tag() -> str:
    text = repr(sorted((c, tuple((f.name, f.dtype) for f in fs)) for c, fs in SCHEMAS.items()))
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def _cached(key: str, build: Callable[[], Grid]) -> Grid:
    path = _cache_dir() / f"{key.replace(':', '_')}-{_schema_tag()}.npz"
    if path.exists():
        try:
            return read_grid(path)
        except (ValidationError, OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)
    grid = build()
    with contextlib.suppress(OSError):  # a read-only cache is not an error
        write_grid(grid, path)
    return grid


def _paper_feeder(name: str, ties: bool) -> Grid:
    """A Baran & Wu feeder from its data file; every branch gets a switch numbered like it."""
    from gridpilot.model.importers.matpower import from_matpower

    text = resources.files("gridpilot.model.data").joinpath(f"{name}.m").read_text()
    # a switch on every branch; status-0 branches become open ties (the importer's convention)
    grid = from_matpower(text, name, switches="all")
    ids = grid.line.ids
    if not ties:  # every tie closed (none in case69's file)
        grid.switch["closed"] = True
        grid.switch["normally_open"] = False
    tie = grid.switch["normally_open"].copy()
    grid.line["max_i_ka"] = CASE33_RATING_KA
    grid.switch["kind"] = np.where(ids == 1, int(SwitchKind.BREAKER), int(SwitchKind.LOAD_BREAK))
    grid.meta.update(
        {
            "numbering": f"paper (Baran & Wu 1989): buses 1-{len(grid.bus)}, branches 1-{len(ids)}"
            + (f", ties {int(ids[tie].min())}-{int(ids[tie].max())}" if tie.any() else ""),
            "ratings": f"assumed {CASE33_RATING_KA} kA on every branch (the paper gives none)",
        }
    )
    grid.validate()
    return grid


def case33bw() -> Grid:
    """Baran & Wu (1989) 33-bus feeder with its 5 normally-open ties, in paper numbering."""
    return _paper_feeder("case33bw", ties=True)


def case69() -> Grid:
    """Baran & Wu (1989) 69-bus feeder (radial; no ties), paper numbering."""
    return _paper_feeder("case69", ties=False)


def cigre_mv() -> Grid:
    """CIGRE MV benchmark (Task Force C6.04.02) with all its DER (PV, wind, storage, CHP)."""
    import pandapower.networks as pn

    from gridpilot.model.importers.pandapower import from_pandapower

    return from_pandapower(pn.create_cigre_network_mv(with_der="all"), "cigre-mv")


def oberrhein() -> Grid:
    """pandapower's mv_oberrhein: a real German MV grid, 179 buses, with its switches."""
    import pandapower.networks as pn

    from gridpilot.model.importers.pandapower import from_pandapower

    return from_pandapower(pn.mv_oberrhein(), "oberrhein")


def schutterwald() -> Grid:
    """pandapower's lv_schutterwald: a real German LV grid, with its switches."""
    import pandapower.networks as pn

    from gridpilot.model.importers.pandapower import from_pandapower

    return from_pandapower(pn.lv_schutterwald(), "schutterwald")


def simbench_grid(code: str) -> Grid:
    """A SimBench grid by code, with its year of 15-minute load/PV/wind/storage profiles."""
    import simbench as sb

    from gridpilot.model.importers.pandapower import from_pandapower

    try:
        net = sb.get_simbench_net(code)
    except Exception as exc:
        raise UnknownComponentError(
            "simbench code", code, f"see simbench.collect_all_simbench_codes() ({exc})"
        ) from None
    _fix_simbench(net)
    grid = from_pandapower(net, f"simbench:{code}")
    grid.meta["simbench_code"] = code
    return grid


def _fix_simbench(net: object) -> None:
    """SimBench quirks: NaN tap limits and voltage set points (kept minimal and explicit)."""
    tr = net.trafo  # type: ignore[attr-defined]
    for col in ("tap_min", "tap_max", "tap_neutral", "tap_pos"):
        if col in tr:
            tr[col] = tr[col].fillna(0)


_STATIC: dict[str, tuple[Callable[[], Grid], int | None, str]] = {
    "case33bw": (
        case33bw,
        33,
        "Baran & Wu 33-bus feeder, 12.66 kV, 5 tie switches (paper numbering)",
    ),
    "case69": (case69, 69, "Baran & Wu 69-bus feeder, 12.66 kV (paper numbering)"),
    "cigre-mv": (cigre_mv, 15, "CIGRE MV benchmark with PV, wind, storage, CHP"),
    "oberrhein": (oberrhein, 179, "pandapower mv_oberrhein, 20 kV, 322 switches"),
    "schutterwald": (schutterwald, 2940, "pandapower lv_schutterwald, 0.4 kV"),
}
_FAMILIES = {
    "simbench:CODE": "any SimBench grid with a year of 15-min profiles, e.g. simbench:1-MV-rural--0-sw (97 buses), simbench:1-MVLV-rural-all-0-sw (5,479 buses)",
    "synthetic:N": "generated radial MV feeders of N buses with laterals, sectionalisers, ties, load and PV (N up to 100,000)",
}


def list_grids() -> list[GridInfo]:
    """The built-in grids and grid families, with bus counts where fixed."""
    out = [GridInfo(k, v[1], v[2]) for k, v in _STATIC.items()]
    from gridpilot.model.threephase.builtin import IEEE_FEEDERS

    out += [GridInfo(k, v[1], v[3], v[2]) for k, v in IEEE_FEEDERS.items()]
    out += [GridInfo(k, None, d) for k, d in _FAMILIES.items()]
    return out


THREE_PHASE_OPERATIONS = (
    "powerflow, qsts, estimate, hosting capacity, CVR, flisr, reconfigure, flex plan and"
    " phase-balance, scenario and demo (the loop)"
)


def require_balanced(grid: object, what: str) -> Grid:
    """``grid`` itself when it is a balanced :class:`Grid`; for a three-phase feeder (or anything
    else) a :class:`ValidationError` naming the grid and ``what`` needs a balanced one."""
    if isinstance(grid, Grid):
        return grid
    name = getattr(grid, "name", type(grid).__name__)
    raise ValidationError(
        f"grid {name!r} is a three-phase (unbalanced) feeder: {what} works on balanced grids only "
        f"for now; three-phase feeders have {THREE_PHASE_OPERATIONS}"
    )


def load_balanced_grid(name: str, what: str, seed: int = 0) -> Grid:
    """:func:`load_grid` for an operation on balanced grids only (see :func:`require_balanced`)."""
    return require_balanced(load_grid(name, seed), what)


def load_grid(name: str, seed: int = 0) -> Grid | ThreePhaseGrid:
    """Load a built-in grid (see :func:`list_grids`), a ``.json``/``.npz`` file, a MATPOWER ``.m``
    file or an OpenDSS ``.dss`` master file.

    Returns a validated :class:`Grid`, or a :class:`ThreePhaseGrid` for the unbalanced IEEE
    feeders (``ieee13`` … ``ieee8500``) and ``.dss`` files. An unknown name is an
    :class:`UnknownComponentError` that lists the known ones.
    """
    key = name.strip()
    from gridpilot.model.threephase.builtin import IEEE_FEEDERS, ieee_feeder

    if key in IEEE_FEEDERS:
        return ieee_feeder(key)
    if key.lower().endswith(".dss"):
        from gridpilot.model.importers.opendss import from_opendss

        return from_opendss(key)
    if key in _STATIC:
        build = _STATIC[key][0]
        return _cached(key, build) if key in ("oberrhein", "schutterwald", "cigre-mv") else build()
    if key.startswith("simbench:"):
        code = key.split(":", 1)[1]
        return _cached(key, lambda: simbench_grid(code))
    if key.startswith("synthetic:"):
        from gridpilot.model.synthetic import synthetic_grid

        raw = key.split(":", 1)[1]
        try:
            n = int(raw)
        except ValueError:
            raise ValidationError(
                f"synthetic grid size must be a whole number of buses, got {raw!r}"
            ) from None
        return synthetic_grid(n, seed=seed)
    path = Path(key)
    if path.suffix in (".json", ".npz"):
        return read_grid(path)
    if path.suffix == ".m":
        from gridpilot.model.importers.matpower import from_matpower

        return from_matpower(path)
    known = ", ".join(
        [*list(_STATIC), *IEEE_FEEDERS, "simbench:CODE", "synthetic:N", "a .json/.npz/.m/.dss file"]
    )
    raise UnknownComponentError("grid", name, f"known: {known}")


__all__ = ["GridInfo", "LoadKind", "list_grids", "load_grid"]
