"""gridpilot's grid file format: JSON (readable) or NPZ (compact), the same layout.

Layout (see docs/file-format.md)::

    {"format": "gridpilot.grid", "version": 1, "name": "...", "f_hz": 50.0, "meta": {...},
     "components": {"bus": {"id": [...], "v_nom_kv": [...], ...}, "line": {...}, ...},
     "labels": {"bus": {"18": "bus 18"}, ...},
     "profiles": {"index": ["2025-01-01T00:00:00", ...], "names": [...], "values": [[...], ...]}}

Columns follow :data:`gridpilot.model.schema.SCHEMAS`; omitted fields take their defaults.
Floats are written with full precision, so a write/read round trip is exact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from gridpilot.errors import Issue, ValidationError
from gridpilot.model.grid import Grid
from gridpilot.model.profiles import Profiles
from gridpilot.model.schema import COMPONENTS
from gridpilot.model.table import Table

FORMAT = "gridpilot.grid"
VERSION = 1


def grid_to_dict(grid: Grid, include_profiles: bool = True) -> dict[str, Any]:
    """The grid as plain JSON-able data in the documented layout."""
    out: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "name": grid.name,
        "f_hz": grid.f_hz,
        "meta": grid.meta,
        "components": {c: t.to_columns() for c, t in grid.tables.items() if len(t)},
        "labels": {c: {str(k): v for k, v in m.items()} for c, m in grid.labels.items() if m},
    }
    if include_profiles and grid.profiles is not None:
        p = grid.profiles
        out["profiles"] = {
            "index": [str(x) for x in p.index],
            "names": list(p.names),
            "values": p.values.tolist(),
            "meta": p.meta,
        }
    return out


def grid_from_dict(data: Any, source: str = "grid data") -> Grid:
    """Build and validate a grid from the documented layout; clear errors name the field."""
    if not isinstance(data, dict):
        raise ValidationError(
            f"{source}: expected a JSON object at the top level, got {type(data).__name__}"
        )
    if data.get("format") != FORMAT:
        raise ValidationError(
            issues=[Issue("file", "format", f"expected {FORMAT!r}", value=data.get("format"))]
        )
    if data.get("version") != VERSION:
        raise ValidationError(
            issues=[Issue("file", "version", f"expected {VERSION}", value=data.get("version"))]
        )
    comps = data.get("components", {})
    if not isinstance(comps, dict):
        raise ValidationError(
            issues=[Issue("file", "components", "expected an object of component tables")]
        )
    unknown = sorted(set(comps) - set(COMPONENTS))
    if unknown:
        raise ValidationError(
            issues=[
                Issue(c, "", f"unknown component type (known: {', '.join(COMPONENTS)})")
                for c in unknown
            ]
        )
    tables: dict[str, Table] = {}
    issues: list[Issue] = []
    for c, cols in comps.items():
        if not isinstance(cols, dict):
            issues.append(Issue(c, "", "expected an object of columns"))
            continue
        try:
            tables[c] = Table.from_columns(c, cols)
        except ValidationError as exc:
            issues += exc.issues
    if issues:
        raise ValidationError(issues=issues)
    labels = {c: {int(k): str(v) for k, v in m.items()} for c, m in data.get("labels", {}).items()}
    profiles = None
    if data.get("profiles"):
        p = data["profiles"]
        try:
            profiles = Profiles(
                np.asarray(p["index"], dtype="datetime64[s]"),
                list(p["names"]),
                np.asarray(p["values"], dtype=np.float64).reshape(len(p["index"]), len(p["names"])),
                dict(p.get("meta", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(
                issues=[Issue("profiles", "", f"cannot be read ({exc})")]
            ) from None
    grid = Grid(
        str(data.get("name", "grid")),
        float(data.get("f_hz", 50.0)),
        tables,
        profiles,
        labels,
        dict(data.get("meta", {})),
    )
    grid.validate(raise_on_error=True)
    return grid


def write_grid(grid: Grid, path: str | Path) -> Path:
    """Write ``grid`` to ``path`` (``.json`` or ``.npz``); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npz":
        arrays: dict[str, Any] = {  # Any: numpy types savez(**kwds) against allow_pickle
            f"table/{c}": t.data for c, t in grid.tables.items() if len(t)
        }
        head = grid_to_dict(grid, include_profiles=False)
        head.pop("components")
        arrays["head"] = np.frombuffer(json.dumps(head).encode(), dtype=np.uint8)
        if grid.profiles is not None:
            arrays["profiles/index"] = grid.profiles.index.astype(np.int64)
            arrays["profiles/values"] = grid.profiles.values
            arrays["profiles/head"] = np.frombuffer(
                json.dumps({"names": grid.profiles.names, "meta": grid.profiles.meta}).encode(),
                dtype=np.uint8,
            )
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)
    else:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(grid_to_dict(grid)))
        tmp.replace(path)
    return path


def read_grid(path: str | Path) -> Grid:
    """Read a grid written by :func:`write_grid` (or by hand in the documented layout)."""
    path = Path(path)
    if not path.exists():
        raise ValidationError(issues=[Issue("file", "path", "does not exist", value=str(path))])
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            head = json.loads(bytes(z["head"]).decode())
            tables = {
                k.split("/", 1)[1]: Table(k.split("/", 1)[1], z[k].copy())
                for k in z.files
                if k.startswith("table/")
            }
            profiles = None
            if "profiles/values" in z.files:
                ph = json.loads(bytes(z["profiles/head"]).decode())
                profiles = Profiles(
                    z["profiles/index"].astype("datetime64[s]"),
                    ph["names"],
                    z["profiles/values"],
                    ph["meta"],
                )
        labels = {c: {int(k): v for k, v in m.items()} for c, m in head.get("labels", {}).items()}
        grid = Grid(head["name"], head["f_hz"], tables, profiles, labels, head.get("meta", {}))
        grid.validate(raise_on_error=True)
        return grid
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValidationError(
            issues=[
                Issue(
                    "file",
                    "json",
                    f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                    value=str(path),
                )
            ]
        ) from None
    return grid_from_dict(data, str(path))
