"""RegControl options: remote regulated bus, PT phase MAX/MIN, maxtapchange=0, reverse
power, in both QSTS engines against OpenDSS (a control edited by DSS command): same tap
operations per regulator, same voltage extremes; what is not modelled stays in the
importer's warning."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.errors import ValidationError
from gridpilot.model.importers.opendss import DssSession, grid_from_session
from gridpilot.model.threephase.builtin import feeder_master
from gridpilot.model.threephase.elements import PT_MAX
from gridpilot.twin.unbalanced import UnbalancedTwin
from gridpilot.twin.unbalanced.reference import add_shape, dss_qsts, extremes_gap, reset_taps

_SUN = np.clip(np.sin(np.pi * (np.arange(96) * 0.25 - 6) / 12), 0, None)
_REVERSE = [
    f"new loadshape.sun npts=96 minterval=15 mult=({' '.join(f'{x:.4f}' for x in _SUN)})",
    "new generator.pv bus1=675 phases=3 kv=4.16 kw=6000 pf=1 model=1 yearly=sun",
    *(f"edit regcontrol.reg{k} revvreg=120 revband=2 revthreshold=100 revdelay=60 revR=1 revX=2"
      for k in (1, 2, 3)),
    "makebuslist",
]  # fmt: skip

SCENARIOS = {
    # the three single-phase regulators hold bus 675 instead of their own winding (LDC off)
    "remote": ("ieee13", 96, [
        *(f"edit regcontrol.reg{k} bus=675.{k} remoteptratio=20 vreg=121 band=2" for k in (1, 2, 3)),
        "makebuslist",  # the controls' buses: OpenDSS's node order settles before the run
    ]),
    # one regulator frozen, the others as usual
    "frozen": ("ieee13", 96, ["edit regcontrol.reg2 maxtapchange=0"]),
    # a gang-operated three-phase regulator on its highest / lowest phase (with LDC)
    "ptmax": ("ieee123", 48, ["edit regcontrol.creg1a ptphase=max vreg=121"]),
    "ptmin": ("ieee123", 48, ["edit regcontrol.creg1a ptphase=min vreg=121"]),
    # a 6 MW PV plant at 675 reverses the flow through the regulators at midday
    "reverse": ("ieee13", 96, [*_REVERSE[:-1], *(
        f"edit regcontrol.reg{k} reversible=yes" for k in (1, 2, 3)), "makebuslist"]),
    # the same, the regulators going to their neutral tap while the flow is reversed
    "revneutral": ("ieee13", 96, [*_REVERSE[:-1], *(
        f"edit regcontrol.reg{k} reversible=yes revneutral=yes" for k in (1, 2, 3)),
        "makebuslist"]),
    # the same PV as cogeneration: forward regulation on the reverse settings (revvreg 118 V:
    # with 120 V the taps happen to settle on neutral too)
    "cogen": ("ieee13", 96, [*_REVERSE[:-1], *(
        f"edit regcontrol.reg{k} cogen=yes revvreg=118" for k in (1, 2, 3)), "makebuslist"]),
    # cogen with revneutral: neutral in cogen mode too (OpenDSS)
    "cogenneutral": ("ieee13", 96, [*_REVERSE[:-1], *(
        f"edit regcontrol.reg{k} cogen=yes revvreg=118 revneutral=yes" for k in (1, 2, 3)),
        "makebuslist"]),
}  # fmt: skip


def _shape(n: int, minutes: float, seed: int = 7) -> np.ndarray:
    t = np.arange(n) * minutes / 60.0
    rng = np.random.default_rng(seed)
    return 0.5 + 0.45 * np.sin(2 * np.pi * (t - 8) / 24) ** 2 + 0.06 * rng.standard_normal(n)


def _pair(grid: str, commands: list[str], mult: np.ndarray) -> tuple[DssSession, UnbalancedTwin]:
    s = DssSession()
    s.compile(feeder_master(grid))
    for cmd in commands:
        s.command(cmd)
    reset_taps(s)
    add_shape(s, "q", mult, 15)
    return s, UnbalancedTwin(grid_from_session(s, grid))


@pytest.mark.parametrize("mode", sorted(SCENARIOS))
def test_regcontrol_option_matches_opendss_in_both_engines(mode: str) -> None:
    grid, steps, commands = SCENARIOS[mode]
    mult = _shape(steps, 15)
    s, tw = _pair(grid, commands, mult)
    assert not any("regcontrol" in w for w in tw.grid.warnings)  # the option is modelled
    fast = tw.qsts(steps, 900.0, engine="compiled", keep_taps=True)
    _, tw2 = _pair(grid, commands, mult)
    slow = tw2.qsts(steps, 900.0, engine="python", keep_taps=True)
    ref = dss_qsts(s, steps, 900.0)
    assert sum(ref.tap_ops.values()) > 5  # the regulators work
    assert fast.tap_ops == slow.tap_ops == ref.tap_ops
    for name, series in fast.tap_series.items():
        assert np.array_equal(series, slow.tap_series[name])
    assert fast.cap_ops == slow.cap_ops
    assert extremes_gap(fast.nodes, fast.vmin_pu, fast.vmax_pu, ref) < 1e-6
    assert extremes_gap(slow.nodes, slow.vmin_pu, slow.vmax_pu, ref) < 1e-6
    if mode == "frozen":
        assert ref.tap_ops["reg2"] == 0
    if grid == "ieee13":  # tap positions step by step (ieee13's regulators: 0.00625 pu a tap)
        for name, taps in ref.tap_series.items():
            assert np.array_equal(_tap_numbers(fast.tap_series[name]), taps), name


def _tap_numbers(series: np.ndarray) -> np.ndarray:
    return np.rint((np.asarray(series) - 1.0) / 0.00625).astype(int)


def _dss_taps(mode: str, mult: np.ndarray) -> dict[str, list[int]]:
    s, _ = _pair("ieee13", SCENARIOS[mode][2], mult)
    return dss_qsts(s, 96, 900.0).tap_series


def test_reverse_neutral_and_cogen_hold_their_own_taps() -> None:
    """OpenDSS's revNeutral parks the regulators on tap 0 through the reverse flow, ours
    too; cogen regulates to revvreg, neither the reverse nor the neutral taps."""
    mult = _shape(96, 15)
    neutral, cogen, reverse = (_dss_taps(m, mult) for m in ("revneutral", "cogen", "reverse"))
    midday = slice(40, 66)  # the PV's reverse flow (the switch after revdelay) lasts
    for name, taps in [*neutral.items(), *_dss_taps("cogenneutral", mult).items()]:
        assert set(taps[midday]) == {0}, name
    assert cogen["reg1"] != reverse["reg1"] and cogen["reg1"] != neutral["reg1"]
    _, tw = _pair("ieee13", SCENARIOS["revneutral"][2], mult)
    ours = tw.qsts(96, 900.0, engine="python", keep_taps=True)
    for name in neutral:
        assert set(_tap_numbers(ours.tap_series[name])[midday]) == {0}, name


def test_reverse_mode_changes_the_taps() -> None:
    """The reverse scenario is not trivially the forward one: OpenDSS taps differently."""
    mult = _shape(96, 15)
    s, _ = _pair("ieee13", _REVERSE, mult)
    forward = dss_qsts(s, 96, 900.0)
    s, _ = _pair("ieee13", SCENARIOS["reverse"][2], mult)
    reverse = dss_qsts(s, 96, 900.0)
    assert forward.tap_series["reg1"] != reverse.tap_series["reg1"]


def test_regcontrol_options_are_modelled_without_warning() -> None:
    s = DssSession()
    s.compile(feeder_master("ieee13"))
    s.command("edit regcontrol.reg1 reversible=yes revneutral=yes ptphase=max inversetime=yes")
    s.command("edit regcontrol.reg2 cogen=yes ldc_z=3 vlimit=125")
    grid = grid_from_session(s, "ieee13")
    assert not any("regcontrol" in w for w in grid.warnings)  # all modelled now
    reg1 = next(r for r in grid.regcontrols if r.name.lower() == "reg1")
    reg2 = next(r for r in grid.regcontrols if r.name.lower() == "reg2")
    assert reg1.pt_phase == PT_MAX and reg1.rev_neutral and not reg1.cogen
    assert reg2.cogen and not reg2.rev_neutral


def test_unknown_remote_bus_node_is_named() -> None:
    s = DssSession()
    s.compile(feeder_master("ieee13"))
    grid = grid_from_session(s, "ieee13")
    grid.regcontrols[0].bus = "652.2"  # 652 has phase 1 only
    with pytest.raises(ValidationError, match=r"652\.2"):
        UnbalancedTwin(grid)
