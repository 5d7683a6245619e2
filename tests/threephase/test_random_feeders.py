"""Random radial unbalanced feeders (laterals of 1-3 phases, wye/delta loads of every
supported model, a step-down transformer, capacitors) against OpenDSS."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridpilot.model.importers.opendss import DssSession, grid_from_session
from gridpilot.twin.unbalanced import UnbalancedTwin
from gridpilot.twin.unbalanced.reference import compare, dss_voltages, tighten

PHASE_SETS = [(1, 2, 3), (1, 2), (2, 3), (1, 3), (1,), (2,), (3,)]


@st.composite
def feeders(draw: st.DrawFn) -> str:
    """DSS text of a random radial feeder."""
    n = draw(st.integers(2, 10))
    lines = [
        "clear",
        "new circuit.rnd basekv=12.47 pu=1.02 r1=0.01 x1=0.05 r0=0.02 x0=0.1",
    ]
    for k in (1, 2, 3):
        r1, x1 = draw(st.floats(0.05, 0.6)), draw(st.floats(0.1, 0.9))
        lines.append(
            f"new linecode.lc{k} nphases={k} r1={r1:.4f} x1={x1:.4f} r0={3 * r1:.4f} "
            f"x0={3 * x1:.4f} c1={draw(st.floats(0, 12)):.3f} c0=4 units=km"
        )
    phases: dict[str, tuple[int, ...]] = {"sourcebus": (1, 2, 3)}
    names = ["sourcebus"]
    for i in range(1, n + 1):
        parent = names[draw(st.integers(0, len(names) - 1))]
        cands = [p for p in PHASE_SETS if set(p) <= set(phases[parent])]
        ph = cands[draw(st.integers(0, len(cands) - 1))]
        nodes = ".".join(map(str, ph))
        km = draw(st.floats(0.1, 1.5))
        lines.append(
            f"new line.l{i} phases={len(ph)} bus1={parent}.{nodes} bus2=b{i}.{nodes} "
            f"linecode=lc{len(ph)} length={km:.3f} units=km"
        )
        phases[f"b{i}"] = ph
        names.append(f"b{i}")
    for i, bus in enumerate(names[1:], 1):
        ph = phases[bus]
        model = draw(st.sampled_from([1, 2, 4, 5, 8]))
        kw = draw(st.floats(10, 400))
        zip_ = " zipv=[0.3 0.3 0.4 0.2 0.3 0.5 0.5]" if model == 8 else ""
        delta = len(ph) >= 2 and draw(st.booleans())
        if delta and len(ph) == 2:
            spec, kv, nph, conn = f"{bus}.{ph[0]}.{ph[1]}", 12.47, 1, "delta"
        elif delta:
            spec, kv, nph, conn = f"{bus}.1.2.3", 12.47, 3, "delta"
        else:
            spec, kv, nph, conn = (
                f"{bus}.{'.'.join(map(str, ph))}",
                7.2 if len(ph) == 1 else 12.47,
                len(ph),
                "wye",
            )
        lines.append(
            f"new load.d{i} bus1={spec} phases={nph} conn={conn} kv={kv} kw={kw:.2f} "
            f"kvar={kw * draw(st.floats(0, 0.6)):.2f} model={model}{zip_}"
        )
    three = [b for b in names[1:] if phases[b] == (1, 2, 3)]
    if three and draw(st.booleans()):
        b = three[0]
        lines.append(
            f"new transformer.t1 phases=3 windings=2 buses=[{b} lv] conns=[delta wye] "
            "kvs=[12.47 0.48] kvas=[500 500] xhl=5 %r=0.5"
        )
        lines.append("new load.lv bus1=lv phases=3 kv=0.48 kw=150 kvar=50 model=1")
    if three and draw(st.booleans()):
        lines.append(f"new capacitor.c1 bus1={three[-1]} phases=3 kv=12.47 kvar=300")
    lines += ["set voltagebases=[12.47 0.48]", "calcvoltagebases"]
    return "\n".join(lines) + "\n"


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=feeders())
def test_random_radial_feeder_matches_opendss(tmp_path: Path, text: str) -> None:
    p = tmp_path / "rnd.dss"
    p.write_text(text)
    s = DssSession()
    s.compile(p)
    g = grid_from_session(s, "rnd", source=str(p))
    tighten(s, "off")
    s.command("solve")
    if not s.circuit.Solution.Converged:
        pytest.skip("OpenDSS did not converge on this draw")
    res = UnbalancedTwin(g).powerflow(control_mode="off")
    a = compare(res, dss_voltages(s))
    assert a.max_dv_pu < 1e-6, (a, text)
    assert a.max_dangle_deg < 1e-4, (a, text)
