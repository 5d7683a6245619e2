"""The file format round-trips exactly; bad files give clear errors and overwrite nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gridpilot.errors import ValidationError
from gridpilot.model import load_grid, read_grid, write_grid
from gridpilot.model.schema import COMPONENTS


def _same(a, b) -> None:
    for c in COMPONENTS:
        assert a[c].data.dtype == b[c].data.dtype
        np.testing.assert_array_equal(a[c].data, b[c].data)
    assert a.labels == b.labels
    if a.profiles is None:
        assert b.profiles is None
    else:
        np.testing.assert_array_equal(a.profiles.values, b.profiles.values)
        np.testing.assert_array_equal(a.profiles.index, b.profiles.index)
        assert a.profiles.names == b.profiles.names


@pytest.mark.parametrize("suffix", [".json", ".npz"])
@pytest.mark.parametrize("name", ["case33bw", "synthetic:60"])
def test_round_trip(tmp_path: Path, name: str, suffix: str) -> None:
    g = load_grid(name)
    if g.profiles is not None:  # keep the file small
        from gridpilot.model import Profiles

        p = g.profiles
        g.profiles = Profiles(p.index[:200], p.names, p.values[:200], p.meta)
    path = write_grid(g, tmp_path / f"g{suffix}")
    back = read_grid(path)
    _same(g, back)
    assert back.meta == json.loads(json.dumps(g.meta))


def test_malformed_json_names_position(tmp_path: Path) -> None:
    p = tmp_path / "bad.json"
    p.write_text('{"format": "gridpilot.grid", "version": 1,')
    with pytest.raises(ValidationError, match=r"not valid JSON.*line 1"):
        read_grid(p)


def test_wrong_value_in_file_named(tmp_path: Path, case33) -> None:
    from gridpilot.model.io import grid_to_dict

    d = grid_to_dict(case33)
    d["components"]["load"]["p_mw"][3] = "x"
    p = tmp_path / "g.json"
    p.write_text(json.dumps(d))
    with pytest.raises(ValidationError, match="load: field 'p_mw' = 'x'"):
        read_grid(p)
    d = grid_to_dict(case33)
    d["components"]["line"]["to_bus"][0] = 999
    p.write_text(json.dumps(d))
    with pytest.raises(ValidationError, match="line id 1: field 'to_bus' = 999"):
        read_grid(p)


def test_missing_file_and_wrong_format(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="does not exist"):
        read_grid(tmp_path / "none.json")
    p = tmp_path / "x.json"
    p.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValidationError, match="field 'format' = 'other'"):
        read_grid(p)


def test_failed_write_keeps_existing_file(tmp_path: Path, case33) -> None:
    path = write_grid(case33, tmp_path / "g.json")
    before = path.read_bytes()
    bad = case33.copy()
    bad.meta["unserialisable"] = object()
    with pytest.raises(TypeError):
        write_grid(bad, path)
    assert path.read_bytes() == before
    read_grid(path)
