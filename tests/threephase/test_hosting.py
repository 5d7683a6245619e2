"""Hosting capacity: each check type, agreement with OpenDSS brute force, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.errors import ValidationError
from gridpilot.model.threephase.builtin import feeder_master
from gridpilot.twin.hosting import (
    HostingOptions,
    Scenario,
    clear_sky_pv,
    critical_scenarios,
    hosting_capacity,
)
from gridpilot.twin.hosting.checks import NAMES
from gridpilot.twin.hosting.feeder import Feeder
from gridpilot.twin.hosting.reference import DssHosting
from gridpilot.twin.hosting.search import evaluate
from gridpilot.twin.hosting.study import settle_base

from .conftest import session_and_grid

LIGHT = Scenario("light", 0, 0.4, 1.0)
HALF = Scenario("half", 0, 0.5, 1.0)


def _grid(name: str):  # type: ignore[no-untyped-def]
    return session_and_grid(name)[1]


@pytest.mark.parametrize(
    ("der", "sc", "opts_kw", "expected"),
    [
        ("pv", LIGHT, {}, {"overvoltage", "voltage_step", "reverse_flow_regulator",
                           "reverse_flow_substation", "unbalance"}),
        ("ev", HALF, {}, {"thermal", "voltage_step", "unbalance"}),
        ("ev", HALF, {"vmin_pu": 0.99, "thermal_pu": 2.0}, {"undervoltage"}),
    ],
)  # fmt: skip
def test_each_check_binds_somewhere_and_is_exact_at_one_step(
    der: str, sc: Scenario, opts_kw: dict, expected: set[str]
) -> None:
    g = _grid("ieee13")
    opts = HostingOptions(der=der, **opts_kw)
    res = hosting_capacity(g, [sc], opts)
    seen = {part for lim in res.limit for part in lim.split("+")}
    assert expected <= seen
    fd = Feeder(g, res.nodes)
    base = settle_base(fd, sc)
    cols = np.flatnonzero(res.hc_kw < opts.max_kw)
    at = evaluate(fd, base, cols, res.hc_kw[cols], opts)
    above = evaluate(fd, base, cols, res.hc_kw[cols] + opts.step_kw, opts)
    assert np.all(at[res.hc_kw[cols] > 0] == 0)  # the answer passes every check
    assert np.all(above != 0)  # one step more breaks one
    for c, flags in zip(cols, above, strict=True):
        assert res.limit[c] == "+".join(n for b, n in NAMES.items() if flags & b)


@pytest.mark.parametrize(("name", "der", "sc"), [("ieee13", "pv", LIGHT), ("ieee13", "ev", HALF),
                                                   ("ieee123", "pv", LIGHT)])  # fmt: skip
def test_agrees_with_opendss_brute_force_within_one_step(name: str, der: str, sc: Scenario) -> None:
    g = _grid(name)
    nodes = g.nodes()
    pick = np.random.default_rng(7).choice(len(nodes), 6, replace=False)
    nodes = [nodes[i] for i in pick if 1 <= nodes[i][1] <= 3]
    opts = HostingOptions(der=der)
    res = hosting_capacity(g, [sc], opts, nodes=nodes)
    ref = DssHosting(feeder_master(name), Feeder(g, nodes), sc, opts)
    brute = np.array([ref.node_hc_kw(b, k) for b, k in nodes])
    assert np.all(brute > 0)
    assert np.abs(brute - res.hc_kw).max() <= opts.step_kw


def test_critical_hours_from_profiles() -> None:
    steps = 96 * 7
    t = np.arange(steps) / 4.0
    load = 0.6 + 0.3 * np.sin(2 * np.pi * (t - 9) / 24) + 0.01 * (t // 24)
    pv = clear_sky_pv(steps)
    scs = critical_scenarios(load, pv, "pv")
    high = pv >= 0.9 * pv.max()
    assert scs[0].load_mult == pytest.approx(load[high].min())
    assert all(pv[s.step] > 0 for s in scs)
    ev = critical_scenarios(load, pv, "ev")
    assert ev[0].load_mult == pytest.approx(load.max()) and ev[0].der_pu == 1.0


def test_bad_input_names_element_and_value() -> None:
    g = _grid("ieee13")
    with pytest.raises(ValidationError, match=r"611\.1"):  # 611 is phase 3 only
        hosting_capacity(g, [LIGHT], nodes=[("611", 1)])
    with pytest.raises(ValidationError, match=r"vmax_pu.*2\.5"):
        hosting_capacity(g, [LIGHT], HostingOptions(vmax_pu=2.5))
    with pytest.raises(ValidationError, match=r"vmin_pu.*-0\.1"):
        hosting_capacity(g, [LIGHT], HostingOptions(vmin_pu=-0.1))
    with pytest.raises(ValidationError, match="der"):
        hosting_capacity(g, [LIGHT], HostingOptions(der="wind"))


def test_split_over_workers_gives_the_same_table() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from gridpilot.twin.hosting import hosting_capacity_on

    g = _grid("ieee13")
    one = hosting_capacity(g, [LIGHT])
    with ThreadPoolExecutor(2) as ex:
        two = hosting_capacity_on(ex, g, [LIGHT], parts=3)
    assert two.nodes == one.nodes
    assert np.array_equal(two.hc_kw, one.hc_kw) and two.limit == one.limit


def test_cli_writes_table_and_map_and_rejects_bad_limits(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from typer.testing import CliRunner

    from gridpilot.cli import _register, app

    _register()
    out = tmp_path / "hc"
    res = CliRunner().invoke(
        app, ["hosting-capacity", "ieee13", "--der", "pv", "--json", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    s = json.loads(res.output)
    assert s["nodes"] == 41 and len(s["rows"]) == 41
    assert (out / "ieee13_pv_hosting.csv").read_text().count("\n") == 42
    assert (out / "ieee13_pv_hosting.png").stat().st_size > 1000
    bad = CliRunner().invoke(app, ["hosting-capacity", "ieee13", "--vmax", "2.5"])
    assert bad.exit_code == 2 and "vmax_pu" in bad.output and "2.5" in bad.output


def test_same_code_on_a_dask_client() -> None:
    distributed = pytest.importorskip("dask.distributed")
    from gridpilot.twin.hosting import hosting_capacity_on

    g = _grid("ieee13")
    one = hosting_capacity(g, [LIGHT])
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cl,
        distributed.Client(cl) as client,
    ):
        two = hosting_capacity_on(client, g, [LIGHT], parts=2)
    assert np.array_equal(two.hc_kw, one.hc_kw) and two.limit == one.limit


def test_later_hours_capped_by_earlier_capacity_give_the_minimum_over_hours(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gridpilot.twin.hosting.search as hs

    cols = [0]
    real = hs.solve_columns

    def counting(fd, s, v0, guess=None, chord=None):  # type: ignore[no-untyped-def]
        cols[0] += s.shape[1]
        return real(fd, s, v0, guess, chord)

    monkeypatch.setattr(hs, "solve_columns", counting)
    g = _grid("ieee13")
    hours = [LIGHT, Scenario("noon", 0, 0.8, 0.7)]
    both = hosting_capacity(g, hours, HostingOptions(der="pv"))
    n_both, cols[0] = cols[0], 0
    each = [hosting_capacity(g, [h], HostingOptions(der="pv")) for h in hours]
    assert np.array_equal(both.hc_kw, np.minimum(each[0].hc_kw, each[1].hc_kw))
    assert n_both < cols[0]  # the cap saves exact power-flow columns
    assert len(set(both.scenario)) == 2  # each hour binds somewhere
