"""Least-loss reconfiguration of ieee123 equals the exhaustive optimum found in OpenDSS."""

from __future__ import annotations

import itertools

import pytest

from gridpilot.control.flisr3p.reconfig import reconfigure3p
from gridpilot.model import load_grid
from gridpilot.model.threephase.builtin import feeder_session
from gridpilot.twin.unbalanced.replay import dss_apply_state, dss_state_metrics
from gridpilot.twin.unbalanced.topology import normalise_ties, solve_switched

from .conftest import is_radial

TOL_PU = 1e-6


def test_reconfiguration_equals_the_exhaustive_optimum_in_opendss():
    g = normalise_ties(load_grid("ieee123"))
    res = reconfigure3p(g)
    assert res.verified and res.method.startswith("exhaustive")
    assert res.after.losses_kw <= res.before.losses_kw + 1e-9
    taps = solve_switched(g).result.taps
    sess = feeder_session("ieee123")[0]  # rated as our grid is (builtin.rate_lines)
    names = sorted(b.name for b in g.branches if b.kind == "switch" and b.enabled)
    total = sum(ld.kw for ld in g.loads if ld.kind == "load")
    lim = res.limits_used
    best = None
    for bits in itertools.product((False, True), repeat=len(names)):
        state = dict(zip(names, bits, strict=True))
        if not is_radial(g, state):
            continue
        dss_apply_state(sess, g, state, taps, "off")
        m = dss_state_metrics(sess)
        ok = (m.served_kw >= total - 1e-6 and lim["v_min_pu"] - TOL_PU <= m.vmin_pu
              and m.vmax_pu <= lim["v_max_pu"] + TOL_PU
              and m.max_loading_pct <= lim["loading_max_pct"] + 1e-3)  # fmt: skip
        if ok and (best is None or m.losses_kw < best[0]):
            best = (m.losses_kw, state)
    assert best is not None
    assert res.after.losses_kw == pytest.approx(best[0], abs=2e-3)
    dss_apply_state(sess, g, res.state, taps, "off")
    assert dss_state_metrics(sess).losses_kw == pytest.approx(best[0], abs=2e-3)


def test_cli_reconfigure_and_flisr_on_ieee123(tmp_path):
    import json

    from typer.testing import CliRunner

    from gridpilot.cli import _register, app

    _register()
    r = CliRunner().invoke(app, ["reconfigure", "ieee123", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output[r.output.index("{") :])
    assert out["verified"] and out["losses_kw_after"] <= out["losses_kw_before"]
    r = CliRunner().invoke(
        app, ["flisr", "ieee123", "--fault", "l60", "--fault-type", "slg:b", "--json"]
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output[r.output.index("{") :])
    assert out["protection"]["events"][-1]["action"] == "lockout"
    assert out["flisr"]["verified"] and out["flisr"]["isolate"]
    bad = CliRunner().invoke(app, ["flisr", "ieee123", "--fault", "l1:slg:a"])
    assert bad.exit_code == 2 and "phase 1 is not on this line" in bad.output
    assert "Traceback" not in bad.output
