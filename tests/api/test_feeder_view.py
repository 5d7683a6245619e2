"""The three-phase feeder routes: geometry, per-phase snapshot, profile and hosting map, their
schemas, sizes, and values equal to the unbalanced twin's (and OpenDSS's distances)."""

from __future__ import annotations

import json
import time
from functools import lru_cache

import numpy as np
import pytest
from fastapi.testclient import TestClient

from gridpilot.api import KeyStore
from gridpilot.api import schemas_feeder as F
from gridpilot.api.feeder3p import FeederSource, PhaseAwareWorld
from gridpilot.api.feeder_app import create_feeder_app
from gridpilot.model import load_grid
from gridpilot.twin.unbalanced import UnbalancedTwin

pytest.importorskip("dss")


@lru_cache(maxsize=4)
def _grid(name: str):
    return load_grid(name)


@pytest.fixture(scope="module")
def app123():
    keys = KeyStore.generate()
    app = create_feeder_app(_grid("ieee123"), keys)
    return TestClient(app), {"X-API-Key": keys.issued["viewer"]}


def test_routes_need_a_key_and_answer_their_models(app123) -> None:
    c, h = app123
    for path, model in [
        ("/api/feeder/geometry", F.FeederGeometry),
        ("/api/feeder/snapshot", F.FeederSnapshot),
        ("/api/feeder/profile", F.FeederProfile),
    ]:
        assert c.get(path).status_code == 401
        r = c.get(path, headers=h)
        assert r.status_code == 200, r.text
        model.model_validate(r.json())  # extra fields forbidden: the payload is the model
    assert c.get("/api/feeder/hosting?der=wind", headers=h).status_code == 422
    info = c.get("/api/feeder", headers=h).json()
    F.FeederInfo.model_validate(info)
    assert info == {"available": True, "name": "ieee123", "buses": 132,
                    "branches": info["branches"], "layout": "tree", "source": "twin"}  # fmt: skip
    assert c.get("/feeder").status_code == 200 and "feeder" in c.get("/").text
    assert c.get("/api/limits", headers=h).json()["v_min_pu"] == 0.95


def test_geometry_columns_are_consistent_and_distances_are_opendss(app123) -> None:
    c, h = app123
    geo = c.get("/api/feeder/geometry", headers=h).json()
    b, br = geo["buses"], geo["branches"]
    n = len(b["name"])
    assert n == 132 and all(len(b[k]) == n for k in ("x", "y", "phases", "kv_ln", "distance"))
    assert geo["layout"] == "tree"  # ieee123's script loads no bus coordinates
    assert max(br["from"] + br["to"]) < n and all(1 <= m <= 7 for m in b["phases"])
    assert {d["name"] for d in geo["devices"]["regulators"]} >= {"creg1a", "creg2a"}
    assert len(geo["devices"]["switches"]) == sum(k == "switch" for k in br["kind"])
    from gridpilot.model.importers.opendss import DssSession
    from gridpilot.model.threephase.builtin import feeder_master

    s = DssSession()
    s.compile(feeder_master("ieee123"))
    s.command("New EnergyMeter.dash Line.sw1 1")  # from the regulator's bus, as our tree
    s.command("solve")
    bus = s.circuit.ActiveBus
    worst = 0.0
    for name, d in zip(b["name"], b["distance"], strict=True):
        s.circuit.SetActiveBus(name)
        if name not in ("150", "150r"):  # upstream of the meter: OpenDSS says 0
            worst = max(worst, abs(bus.Distance - d))
    assert worst < 2e-3, worst  # km (the unitless 1 m switches are the difference)


def test_snapshot_values_equal_the_twins(app123) -> None:
    c, h = app123
    geo = c.get("/api/feeder/geometry", headers=h).json()
    snap = c.get("/api/feeder/snapshot", headers=h).json()
    assert snap["source"] == "twin"
    res = UnbalancedTwin(_grid("ieee123")).powerflow()
    idx = {b: i for i, b in enumerate(geo["buses"]["name"])}
    df = res.nodes_df()
    for bus, ph, v, a in zip(df["bus"], df["phase"], df["v_pu"], df["angle_deg"], strict=True):
        assert snap["v_pu"][ph - 1][idx[bus]] == pytest.approx(v, abs=1e-5)
        assert snap["angle_deg"][ph - 1][idx[bus]] == pytest.approx(a, abs=0.01)
    for p in range(3):  # a bus without the phase has null there
        for i, m in enumerate(geo["buses"]["phases"]):
            assert (snap["v_pu"][p][i] is None) == (not m & (1 << p))
    bdf = res.branches_df()
    bi = {n: k for k, n in enumerate(geo["branches"]["name"])}
    for name, ph, amps in zip(bdf["branch"], bdf["phase"], bdf["i_a"], strict=True):
        assert snap["i_a"][ph - 1][bi[name]] == pytest.approx(amps, abs=0.01)
    # the source line's kW on each phase: |V||I|cos, summed = the feeder's import
    k = bi["sw1"]
    total = sum(snap["p_kw"][p][k] for p in range(3))
    assert 3000 < total < 4000, total  # ieee123's 3.49 MW load plus losses


def test_profile_has_three_phases_joined_by_branches(app123) -> None:
    c, h = app123
    prof = c.get("/api/feeder/profile", headers=h).json()
    assert [p["phase"] for p in prof["phases"]] == ["A", "B", "C"]
    for p in prof["phases"]:
        n = len(p["bus"])
        assert n > 50 and len(p["distance"]) == n == len(p["v_pu"])
        assert all(0.9 < v < 1.1 for v in p["v_pu"])
        assert p["seg_from"] and max(p["seg_from"] + p["seg_to"]) < n


def test_hosting_map_from_the_clis_table_and_computed(tmp_path) -> None:
    from gridpilot.api.hosting3p import compute_table, table_path

    g = _grid("ieee13")
    table, _ = compute_table(g, "pv")
    table.to_csv(table_path(tmp_path, g.name, "pv"), index=False)
    keys = KeyStore.generate()
    h = {"X-API-Key": keys.issued["viewer"]}
    c = TestClient(create_feeder_app(g, keys, hosting_dir=tmp_path))
    got = c.get("/api/feeder/hosting?der=pv", headers=h).json()
    F.FeederHosting.model_validate(got)
    assert got["status"] == "ready" and got["origin"].startswith("file")
    names = c.get("/api/feeder/geometry", headers=h).json()["buses"]["name"]
    for bus, ph, kw in zip(table["bus"].astype(str), table["phase"], table["hc_kw"], strict=True):
        assert got["hc_kw"][ph - 1][names.index(bus)] == pytest.approx(kw)
    i = names.index(str(table["bus"].iloc[0]))
    assert got["min_kw"][i] == table[table["bus"].astype(str) == names[i]]["hc_kw"].min()
    # no file for EV: computed in the background, polled until ready
    first = c.get("/api/feeder/hosting?der=ev", headers=h).json()
    assert first["status"] in ("computing", "ready")
    assert c.app.state.hosting.wait("ev", 120) == "ready"
    ev = c.get("/api/feeder/hosting?der=ev", headers=h).json()
    assert ev["origin"] == "computed" and any(x is not None for x in ev["min_kw"])


class _World:
    """A stand-in for a three-phase loop world: its grid and a result it solved itself."""

    def __init__(self, grid) -> None:
        self.grid3p = grid
        self.res = UnbalancedTwin(grid).powerflow(load_mult=0.5)

    def phase_result(self):
        return self.res


def test_a_phase_aware_world_is_read_not_recomputed() -> None:
    w = _World(_grid("ieee13"))
    assert isinstance(w, PhaseAwareWorld)
    snap = FeederSource.of_world(w).snapshot()
    assert snap["source"] == "loop"
    assert min(v for v in snap["v_pu"][0] if v) == pytest.approx(
        w.res.summary()["vmin_pu_phase1"], abs=1e-5
    )


def test_the_loop_app_says_a_balanced_grid_has_no_feeder_view(setup) -> None:
    _orch, keys, c = setup
    h = {"X-API-Key": keys.issued["viewer"]}
    for route in ("/geometry", "/snapshot", "/profile", "/hosting"):
        r = c.get(f"/api/feeder{route}", headers=h)
        assert r.status_code == 404 and "not a three-phase feeder" in r.json()["detail"]
    info = c.get("/api/feeder", headers=h).json()  # the dashboard's question: no link
    assert info["available"] is False and "not a three-phase feeder" in info["detail"]


@pytest.mark.slow
def test_ieee8500_payloads_are_small_and_fast() -> None:
    """ieee8500: sizes (gzip, as the browser gets them) and times; printed for the report."""
    keys = KeyStore.generate()
    c = TestClient(create_feeder_app(_grid("ieee8500"), keys))
    h = {"X-API-Key": keys.issued["viewer"], "Accept-Encoding": "gzip"}
    out = {}
    for run in ("first", "again"):
        for route in ("geometry", "snapshot", "profile"):
            t0 = time.perf_counter()
            r = c.get(f"/api/feeder/{route}", headers=h)
            secs = round(time.perf_counter() - t0, 3)
            out[f"{route}_{run}"] = {"s": secs, "gzip_bytes": int(r.headers["content-length"])}
            assert r.headers["content-encoding"] == "gzip"
    geo = c.get("/api/feeder/geometry", headers=h).json()
    assert len(geo["buses"]["name"]) == 4876 and geo["layout"] == "coordinates"
    print(json.dumps(out))
    assert out["geometry_again"]["gzip_bytes"] < 300_000
    assert out["snapshot_again"]["gzip_bytes"] < 300_000
    assert out["geometry_again"]["s"] < 1.0 and out["snapshot_again"]["s"] < 1.0  # cached
    assert np.nanmax(np.array(geo["buses"]["distance"], float)) == pytest.approx(17.0555, abs=1e-3)
    # a split-phase secondary (nodes 1, 2 are the 120 V legs) is on its transformer's phase
    names = geo["buses"]["name"]
    for t in _grid("ieee8500").transformers:
        if len(t.windings) == 3 and len(t.windings[0].terminal.nodes) == 2:
            ph = t.windings[0].terminal.nodes[0]
            sec = names.index(t.windings[1].terminal.bus)
            assert geo["buses"]["phases"][sec] == 1 << (ph - 1), t.name


def test_serve_a_three_phase_grid_serves_its_feeder_view_then_stops() -> None:
    """``gridpilot serve --grid ieee13``: where the loop does not run it, the feeder view alone
    is served (values from the twin), else the loop with its feeder view (values from the
    loop); either way to the printed key, no traceback, exit 0 on Ctrl-C (SIGINT)."""
    import os
    import re
    import signal
    import subprocess
    import sys

    import httpx

    from netutil import free_port

    port = free_port()
    cmd = [sys.executable, "-m", "gridpilot", "serve", "--grid", "ieee13", "--port", str(port)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "400"}
    proc = subprocess.Popen(
        [*cmd, "--duration", "150"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        head, deadline = "", time.monotonic() + 90
        while "/feeder#key=" not in head and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            head += line
        m = re.search(r"key=([A-Za-z0-9_\-]+)", head)
        assert m and "/feeder#key=" in head and "Traceback" not in head, head
        want = "loop" if "dashboard:" in head else "twin"  # the loop's first step: its values
        snap = None
        while (snap is None or snap["source"] != want) and time.monotonic() < deadline:
            try:
                r = httpx.get(
                    f"http://127.0.0.1:{port}/api/feeder/snapshot",
                    headers={"X-API-Key": m.group(1)},
                    timeout=30,
                )
                snap = r.json()
            except httpx.TransportError:
                time.sleep(0.3)
        assert snap is not None and snap["name"] == "ieee13"
        assert snap["source"] == want, head
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_serve_feeder_stops_by_itself_after_duration() -> None:
    """The feeder view's ``--duration`` timer ends the server by itself (in process: the
    subprocess tests stop it with Ctrl-C instead of waiting the duration out)."""
    import io

    from rich.console import Console

    from gridpilot.api.cli import _serve_feeder
    from gridpilot.model import load_grid
    from netutil import free_port

    out = io.StringIO()
    t0 = time.monotonic()
    _serve_feeder(load_grid("ieee13"), "127.0.0.1", free_port(), 0.5, None, Console(file=out))
    assert time.monotonic() - t0 < 20
    assert "/feeder#key=" in out.getvalue()


_STOP_MID_STUDY = """
import time
from fastapi.testclient import TestClient
from gridpilot.api import KeyStore
from gridpilot.api.feeder_app import create_feeder_app
from gridpilot.model import load_grid

keys = KeyStore.generate()
client = TestClient(create_feeder_app(load_grid("ieee8500"), keys))
r = client.get("/api/feeder/hosting?der=pv", headers={"X-API-Key": keys.issued["viewer"]})
assert r.json()["status"] == "computing", r.json()
time.sleep(4)  # the study is under way when the process ends
print("asked")
"""


def test_a_process_that_exits_mid_study_exits_zero() -> None:
    """ieee8500's hosting study runs minutes in the background: a server that stops meanwhile
    (Ctrl-C, the end of a test) exits with status 0 (a study thread made it exit 120)."""
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-c", _STOP_MID_STUDY], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "asked" in res.stdout


def test_a_study_child_stopped_by_a_signal_is_no_failure() -> None:
    """A hosting study's child killed by a signal (the server stopping) is
    :class:`StudyInterrupted`, logged as information; one that exits by itself without an
    answer is a failure (RuntimeError naming its exit code)."""
    from childutil import exits_with_3, killed_by_a_signal
    from gridpilot.api.hosting3p import StudyInterrupted, compute_in_child

    g = load_grid("ieee13")
    with pytest.raises(StudyInterrupted, match="exit code -9"):
        compute_in_child(g, "pv", target=killed_by_a_signal)
    with pytest.raises(RuntimeError, match="exit code 3") as err:
        compute_in_child(g, "pv", target=exits_with_3)
    assert not isinstance(err.value, StudyInterrupted)
