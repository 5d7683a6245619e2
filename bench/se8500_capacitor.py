"""Why the loop's first state estimate on ieee8500 removed a capacitor's entry ("P load
1187", capbank3's entry of the balanced view) as bad data: the same measurements re-estimated
with one suspected cause taken away at a time (docs/agent.md, "The loop on ieee8500"), and
the measurement model that fixed it (``class_sigma_only`` before, ``baseline`` now).

    PYTHONPATH=src .venv/bin/python bench/se8500_capacitor.py --json

The world at 17:00 on a summer day (noise off, no fleet), one loop step; then the loop's own
measurement set and variants of it, each estimated robustly (bad data removed):

* ``class_sigma_only``: the measurement model before the view's one (every voltage sensor
  at its class sigma, 0.005 pu; the head flow's P and Q sigma 1 % of |P| and of |Q|), which
  removed a capacitor's entry;
* ``baseline``: as the loop has them now (``view_sensors``: voltage sensors' model error of
  the balanced view, flow sigma of |S|);
* ``caps_at_v2``: each capacitor entry's Q at its switched state times the square of its
  node-phase voltages (what the feeder's capacitors inject) instead of the nameplate kvar;
* ``three_phase_v_only``: the voltage sensors on single-phase buses (tie ends, laterals: one
  phase's voltage, which the balanced view cannot carry) left out;
* ``flow_sigma_of_s``: the head flow sensor's P and Q sigma 1 % of its apparent power
  (already so in the loop's set now: the same as ``baseline``);
* ``both``: the last two together.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import numpy as np

EVENING = 200 * 96 + 17 * 4


def run() -> dict[str, Any]:
    """The loop's measurement set and its variants, estimated robustly."""
    from gridpilot.agent import Orchestrator, ThreePhaseWorld
    from gridpilot.agent.estimating import LoopEstimator, default_sensors
    from gridpilot.agent.world3p import three_phase_grid
    from gridpilot.estimation.baddata import estimate_robust
    from gridpilot.estimation.measurements import PowerSensorKind

    w = ThreePhaseWorld(three_phase_grid("ieee8500"), start_step=EVENING, noise=0.0, fleet=False)
    o = Orchestrator(w)
    o.run(1)
    g, st = w.grid, w._step
    assert o.estimator is not None and st is not None
    se = o.estimator._se(o.last.switch_closed)
    m0 = o.estimator.measurements(o.last)
    pos = {n: i for i, n in enumerate(w.physics.nodes)}
    vph = st.result.v_pu
    caps = [c for c in w.grid3p.capacitors if c.enabled and c.t1.bus in w.view.bus_id]
    entries = [int(x) for x in g.load.ids if not w.view.load_members.get(int(x))][: len(caps)]
    out: dict[str, Any] = {}
    mb = m0.copy()
    for lid, c in zip(entries, caps, strict=True):
        nodes = [n for n in c.t1.nodes if n > 0] or [1, 2, 3]
        q = sum(c.kvar[0] * c.states[0] / len(nodes) * float(vph[pos[(c.t1.bus, n)]]) ** 2
                for n in nodes)  # fmt: skip
        j = int(np.flatnonzero((mb.p_element_id == lid) & (mb.p_kind == PowerSensorKind.LOAD))[0])
        out.setdefault("caps_q_mvar", {})[c.name] = [float(mb.q_mvar[j]), round(-q / 1e3, 4)]
        mb.q_mvar[j] = -q / 1e3
    three = [all((w.view.bus_name[int(g.bus.index_of(int(b))[0])], p) in pos for p in (1, 2, 3))
             for b in m0.v_bus_id]  # fmt: skip
    single = [i for i, k in enumerate(three) if not k]
    flow = np.flatnonzero(m0.p_kind == PowerSensorKind.LINE_FROM)

    def sigma_of_s(m: Any) -> Any:
        m = m.copy()
        s = 0.01 * np.hypot(m.p_mw[flow], m.q_mvar[flow])
        m.p_sigma_mw[flow], m.q_sigma_mvar[flow] = s, s
        return m

    before = LoopEstimator(g, default_sensors(g)).measurements(o.last)
    variants = {"class_sigma_only": before, "baseline": m0, "caps_at_v2": mb, "three_phase_v_only": m0.without(single, []),
                "flow_sigma_of_s": sigma_of_s(m0),
                "both": sigma_of_s(m0.without(single, []))}  # fmt: skip
    for name, m in variants.items():
        res = se.estimate(m)
        lab = m.labels()
        top = np.argsort(-((res.residual / res.sigma) ** 2))[:3]
        rep = estimate_robust(se, m)
        out[name] = {"removed": rep.removed_labels, "chi2": [round(x, 1) for x in rep.chi2_history],
                     "chi2_limit": round(float(res.chi2_limit), 2),
                     "largest": [(lab[i], round(float(res.residual[i]), 4),
                                  round(float(res.sigma[i]), 4)) for i in top]}  # fmt: skip
    out["v_sensors"] = {"three_phase": int(sum(three)), "single_phase": len(single)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print JSON")
    ap.parse_args()
    out = {
        "bench": "se8500_capacitor",
        **run(),
        "loadavg_1min_at_end": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
