"""Import a pandapower network (also SimBench grids, with their relative profiles).

Ids are pandapower's indices. pandapower's ``scaling`` is folded into ``p_mw``/``q_mvar``;
``parallel`` lines are merged into one equivalent line; voltage-controlled ``gen`` elements
become PQ generators at their set power (noted in ``grid.meta["import_notes"]``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import pandas as pd

from gridpilot.errors import ValidationError
from gridpilot.model.grid import Grid
from gridpilot.model.profiles import Profiles
from gridpilot.model.schema import ElementType, GenKind, SwitchKind
from gridpilot.model.table import Table

log = logging.getLogger(__name__)

_SWITCH_KIND = {
    "CB": SwitchKind.BREAKER,
    "LBS": SwitchKind.LOAD_BREAK,
    "LS": SwitchKind.LOAD_BREAK,
    "DS": SwitchKind.DISCONNECTOR,
}


def _col(df: pd.DataFrame, name: str, default: Any) -> np.ndarray:
    if name not in df.columns:
        return np.full(len(df), default)
    s = df[name]
    if s.dtype == object:
        s = pd.to_numeric(s, errors="coerce")
    return s.fillna(default).to_numpy()


def _coords(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    x = np.zeros(len(df))
    y = np.zeros(len(df))
    if "geo" in df.columns:
        for k, g in enumerate(df["geo"].to_numpy()):
            if isinstance(g, str) and g:
                try:
                    c = json.loads(g)["coordinates"]
                    x[k], y[k] = float(c[0]), float(c[1])
                except (ValueError, KeyError, TypeError, IndexError):
                    pass
    return x, y


def _gen_kind(types: pd.Series) -> np.ndarray:
    t = types.fillna("").astype(str).str.lower()
    kind = np.full(len(t), int(GenKind.OTHER), dtype=np.int8)
    kind[t.str.contains("pv|solar").to_numpy()] = GenKind.PV
    kind[t.str.contains("wind|wp").to_numpy()] = GenKind.WIND
    return kind


def _bus_table(bus: pd.DataFrame) -> Table:
    """Buses: nominal kV, geo coordinates, zones numbered in order of appearance."""
    x, y = _coords(bus)
    zone = pd.factorize(bus["zone"].astype(str))[0] if "zone" in bus.columns else np.zeros(len(bus))
    return Table.from_columns(
        "bus",
        {
            "id": bus.index.to_numpy(),
            "v_nom_kv": bus["vn_kv"].to_numpy(),
            "x": x,
            "y": y,
            "zone": zone,
            "in_service": bus["in_service"].to_numpy(bool),
        },
    )


def _line_table(ln: pd.DataFrame) -> Table:
    """Lines, ``parallel`` ones merged into one equivalent line (derating factor ``df`` applied)."""
    par = _col(ln, "parallel", 1).astype(float)
    return Table.from_columns(
        "line",
        {
            "id": ln.index.to_numpy(),
            "from_bus": ln["from_bus"].to_numpy(),
            "to_bus": ln["to_bus"].to_numpy(),
            "length_km": ln["length_km"].to_numpy(),
            "r_ohm_per_km": ln["r_ohm_per_km"].to_numpy() / par,
            "x_ohm_per_km": ln["x_ohm_per_km"].to_numpy() / par,
            "c_nf_per_km": _col(ln, "c_nf_per_km", 0.0) * par,
            "max_i_ka": ln["max_i_ka"].to_numpy() * par * _col(ln, "df", 1.0),
            "in_service": ln["in_service"].to_numpy(bool),
        },
    )


def _trafo_table(tr: pd.DataFrame) -> Table:
    """Two-winding transformers with their tap changers (a missing tap range is the present tap)."""
    tap_pos = _col(tr, "tap_pos", 0.0)
    tap_neutral = _col(tr, "tap_neutral", 0.0)
    tap_min = np.minimum(_col(tr, "tap_min", np.nan), tap_pos)
    tap_max = np.maximum(_col(tr, "tap_max", np.nan), tap_pos)
    tap_min = np.where(np.isnan(tap_min), tap_pos, tap_min)
    tap_max = np.where(np.isnan(tap_max), tap_pos, tap_max)
    side = (
        tr["tap_side"].fillna("hv").astype(str).str.lower().to_numpy()
        if "tap_side" in tr
        else np.array(["hv"] * len(tr))
    )
    tpar = _col(tr, "parallel", 1).astype(float)
    return Table.from_columns(
        "transformer",
        {
            "id": tr.index.to_numpy(),
            "hv_bus": tr["hv_bus"].to_numpy(),
            "lv_bus": tr["lv_bus"].to_numpy(),
            "sn_mva": tr["sn_mva"].to_numpy() * tpar,
            "vn_hv_kv": tr["vn_hv_kv"].to_numpy(),
            "vn_lv_kv": tr["vn_lv_kv"].to_numpy(),
            "vk_percent": tr["vk_percent"].to_numpy(),
            "vkr_percent": tr["vkr_percent"].to_numpy(),
            "pfe_kw": _col(tr, "pfe_kw", 0.0) * tpar,
            "i0_percent": _col(tr, "i0_percent", 0.0),
            "shift_degree": _col(tr, "shift_degree", 0.0),
            "tap_side": (side == "lv").astype(np.int8),
            "tap_pos": np.round(tap_pos),
            "tap_neutral": np.round(tap_neutral),
            "tap_min": np.round(tap_min),
            "tap_max": np.round(tap_max),
            "tap_step_percent": _col(tr, "tap_step_percent", 0.0),
            "in_service": tr["in_service"].to_numpy(bool),
        },
    )


def _switch_table(sw: pd.DataFrame, notes: list[str]) -> Table:
    """Line, transformer and bus-bus switches (those at three-winding transformers dropped, noted)."""
    keep = sw["et"].isin(["l", "t", "b"]).to_numpy()
    if not keep.all():
        notes.append(f"{int((~keep).sum())} switches at three-winding transformers dropped")
    sw = sw[keep]
    et = (
        sw["et"]
        .map({"l": ElementType.LINE, "t": ElementType.TRANSFORMER, "b": ElementType.BUS})
        .to_numpy()
    )
    kind = (
        sw["type"].map(lambda t: int(_SWITCH_KIND.get(str(t), SwitchKind.LOAD_BREAK))).to_numpy()
        if "type" in sw
        else np.ones(len(sw))
    )
    closed = sw["closed"].to_numpy(bool)
    return Table.from_columns(
        "switch",
        {
            "id": sw.index.to_numpy(),
            "bus": sw["bus"].to_numpy(),
            "element": sw["element"].to_numpy(),
            "et": et,
            "kind": kind,
            "closed": closed,
            "normally_open": ~closed,
        },
    )


def _source_table(eg: pd.DataFrame) -> Table:
    """External grids as ideal slack sources."""
    return Table.from_columns(
        "source",
        {
            "id": eg.index.to_numpy(),
            "bus": eg["bus"].to_numpy(),
            "vm_pu": eg["vm_pu"].to_numpy(),
            # pandapower's runpp treats ext_grid as an ideal slack; s_sc_max_mva is for short circuits
            "va_deg": _col(eg, "va_degree", 0.0),
            "sk_mva": 1e10,
            "rx_ratio": 0.1,
            "in_service": eg["in_service"].to_numpy(bool),
        },
    )


def _load_table(ld: pd.DataFrame) -> Table:
    """Loads with ``scaling`` folded in and their constant-current/impedance shares."""
    scale = _col(ld, "scaling", 1.0)
    i_share = (
        _col(ld, "const_i_p_percent", _col(ld, "const_i_percent", 0.0)[0] if len(ld) else 0.0)
        / 100.0
    )
    z_share = (
        _col(ld, "const_z_p_percent", _col(ld, "const_z_percent", 0.0)[0] if len(ld) else 0.0)
        / 100.0
    )
    return Table.from_columns(
        "load",
        {
            "id": ld.index.to_numpy(),
            "bus": ld["bus"].to_numpy(),
            "p_mw": ld["p_mw"].to_numpy() * scale,
            "q_mvar": ld["q_mvar"].to_numpy() * scale,
            "i_share": i_share,
            "z_share": z_share,
            "in_service": ld["in_service"].to_numpy(bool),
        },
    )


def _generators(net: Any, notes: list[str]) -> pd.DataFrame:
    """Static generators and (as PQ injections, ids after the sgens') voltage-controlled ones."""
    gens = []
    sg = net.sgen
    if len(sg):
        sscale = _col(sg, "scaling", 1.0)
        gens.append(
            pd.DataFrame(
                {
                    "id": sg.index.to_numpy(),
                    "bus": sg["bus"].to_numpy(),
                    "kind": _gen_kind(sg["type"] if "type" in sg else pd.Series([""] * len(sg))),
                    "p_mw": sg["p_mw"].to_numpy() * sscale,
                    "q_mvar": sg["q_mvar"].to_numpy() * sscale,
                    "sn_mva": _col(sg, "sn_mva", 0.0),
                    "in_service": sg["in_service"].to_numpy(bool),
                    "src": "sgen",
                    "profile": sg["profile"].to_numpy() if "profile" in sg else None,
                }
            )
        )
    if len(net.gen):
        g = net.gen
        notes.append(
            f"{len(g)} voltage-controlled generators imported as PQ injections at their p_mw"
        )
        offset = (int(sg.index.max()) + 1) if len(sg) else 0
        gens.append(
            pd.DataFrame(
                {
                    "id": g.index.to_numpy() + offset,
                    "bus": g["bus"].to_numpy(),
                    "kind": np.full(len(g), int(GenKind.CONVENTIONAL)),
                    "p_mw": g["p_mw"].to_numpy() * _col(g, "scaling", 1.0),
                    "q_mvar": 0.0,
                    "sn_mva": _col(g, "sn_mva", 0.0),
                    "in_service": g["in_service"].to_numpy(bool),
                    "src": "gen",
                    "profile": g["profile"].to_numpy() if "profile" in g else None,
                }
            )
        )
    return pd.concat(gens, ignore_index=True) if gens else pd.DataFrame()


def _generator_table(gdf: pd.DataFrame, notes: list[str]) -> Table:
    """The generator table (negative p_mw set to 0 in ``gdf`` too, noted)."""
    neg = gdf["p_mw"].to_numpy() < 0
    if neg.any():
        notes.append(f"{int(neg.sum())} generators with negative p_mw set to 0")
        gdf.loc[neg, "p_mw"] = 0.0
    return Table.from_columns(
        "generator",
        {
            k: gdf[k].to_numpy()
            for k in ("id", "bus", "kind", "p_mw", "q_mvar", "sn_mva", "in_service")
        },
    )


def _storage_table(st: pd.DataFrame) -> Table:
    """Storage units (a missing energy or power rating gets a small positive default)."""
    e = _col(st, "max_e_mwh", 0.0)
    pmax = np.maximum.reduce(
        [np.abs(st["p_mw"].to_numpy()), _col(st, "sn_mva", 0.0), _col(st, "max_p_mw", 0.0)]
    )
    return Table.from_columns(
        "storage",
        {
            "id": st.index.to_numpy(),
            "bus": st["bus"].to_numpy(),
            "p_mw": st["p_mw"].to_numpy() * _col(st, "scaling", 1.0),
            "q_mvar": st["q_mvar"].to_numpy(),
            "e_mwh": np.where(e > 0, e, np.maximum(pmax, 1e-3) * 2),
            "soc": np.clip(_col(st, "soc_percent", 50.0) / 100.0, 0, 1),
            "p_max_mw": np.where(pmax > 0, pmax, 1e-3),
            "in_service": st["in_service"].to_numpy(bool),
        },
    )


def _labels(net: Any) -> dict[str, dict[int, str]]:
    """The names of buses, lines and loads where pandapower has them."""
    labels = {}
    for comp, df in (("bus", net.bus), ("line", net.line), ("load", net.load)):
        if "name" in df.columns:
            m = {int(i): str(v) for i, v in df["name"].items() if isinstance(v, str) and v}
            if m:
                labels[comp] = m
    return labels


def from_pandapower(net: Any, name: str | None = None, with_profiles: bool = True) -> Grid:
    """Convert a pandapower ``net`` into a validated :class:`Grid` (pandapower is not changed)."""
    notes: list[str] = []
    tables: dict[str, Table] = {"bus": _bus_table(net.bus), "line": _line_table(net.line)}
    if len(net.trafo):
        tables["transformer"] = _trafo_table(net.trafo)
    if len(net.switch):
        tables["switch"] = _switch_table(net.switch, notes)
    tables["source"] = _source_table(net.ext_grid)
    tables["load"] = _load_table(net.load)
    gdf = _generators(net, notes)
    if len(gdf):
        tables["generator"] = _generator_table(gdf, notes)
    if len(net.storage):
        tables["storage"] = _storage_table(net.storage)
    grid = Grid(
        name or str(getattr(net, "name", "") or "pandapower"),
        float(getattr(net, "f_hz", 50.0)),
        tables,
    )
    grid.labels = _labels(net)
    if notes:
        grid.meta["import_notes"] = notes
        log.info("pandapower import of %s: %s", grid.name, "; ".join(notes))
    grid.meta["source"] = "pandapower"
    if with_profiles and isinstance(getattr(net, "profiles", None), dict) and net.profiles:
        _attach_simbench_profiles(grid, net, gdf)
    try:
        grid.validate(raise_on_error=True)
    except ValidationError as exc:
        raise ValidationError(
            f"the pandapower network does not form a valid grid:\n  {exc}", exc.issues
        ) from None
    return grid


def _attach_simbench_profiles(grid: Grid, net: Any, gdf: pd.DataFrame) -> None:  # noqa: C901
    """Link loads/generators/storage to SimBench's relative profiles (p = base x profile)."""
    names: list[str] = []
    cols: list[np.ndarray] = []

    def add(frame: pd.DataFrame, col: str) -> int:
        key = col
        if key in names:
            return names.index(key)
        names.append(key)
        cols.append(frame[col].to_numpy(np.float64))
        return len(names) - 1

    prof = net.profiles
    ld = net.load
    if "load" in prof and "profile" in ld.columns and len(ld):
        frame = prof["load"]
        pp_ = np.full(len(ld), -1, np.int32)
        qq = np.full(len(ld), -1, np.int32)
        for k, p in enumerate(ld["profile"].to_numpy()):
            if isinstance(p, str) and f"{p}_pload" in frame.columns:
                pp_[k] = add(frame, f"{p}_pload")
                qq[k] = add(frame, f"{p}_qload")
        pos = grid.load.position_map(ld.index.to_numpy())
        grid.load["p_profile"][pos] = pp_
        grid.load["q_profile"][pos] = qq
    if len(gdf) and "profile" in gdf.columns:
        gp = np.full(len(gdf), -1, np.int32)
        for k, (src, p) in enumerate(zip(gdf["src"], gdf["profile"], strict=True)):
            frame = prof.get("renewables" if src == "sgen" else "powerplants")
            if isinstance(p, str) and frame is not None and p in frame.columns:
                gp[k] = add(frame, p)
        grid.generator["p_profile"][grid.generator.position_map(gdf["id"].to_numpy())] = gp
    st = net.storage
    if "storage" in prof and len(st) and "profile" in st.columns:
        frame = prof["storage"]
        sp = np.full(len(st), -1, np.int32)
        for k, p in enumerate(st["profile"].to_numpy()):
            if isinstance(p, str) and p in frame.columns:
                sp[k] = add(frame, p)
        grid.storage["p_profile"][grid.storage.position_map(st.index.to_numpy())] = sp
    if not names:
        return
    first = next(iter(prof.values()))
    steps = len(first)
    if "time" in first.columns:
        t0 = pd.to_datetime(first["time"].iloc[0], dayfirst=True)
        t1 = pd.to_datetime(first["time"].iloc[1], dayfirst=True)
        step = t1 - t0
    else:
        t0, step = pd.Timestamp("2016-01-01"), pd.Timedelta(minutes=15)
    index = np.datetime64(t0.to_datetime64(), "s") + np.arange(steps) * np.timedelta64(
        int(step.total_seconds()), "s"
    )
    grid.profiles = Profiles(index, names, np.column_stack(cols), {"source": "simbench"})
