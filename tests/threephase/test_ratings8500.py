"""ieee8500's line ratings from its own distribution's conductor data (``WireData.dss`` via
``LineGeometry.dss``, the geometries named as the master's linecodes), where its script leaves
OpenDSS's 400 A placeholder; the script's own ratings kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridpilot.errors import ValidationError
from gridpilot.model.threephase.builtin import (
    DATA_DIR,
    OPENDSS_PLACEHOLDER_AMPS,
    feeder_ampacity,
    feeder_session,
    geometry_ampacity,
    rate_lines,
)


@pytest.fixture(scope="module")
def rated8500():
    sess, rated = feeder_session("ieee8500")
    lines = sess.circuit.Lines
    out: dict[str, tuple[str, float, float]] = {}
    i = lines.First
    while i:
        out[lines.Name.lower()] = (
            lines.LineCode.lower(),
            float(lines.NormAmps),
            float(lines.EmergAmps),
        )
        i = lines.Next
    return out, rated


def test_geometries_rate_by_their_phase_conductors() -> None:
    d = DATA_DIR / "8500-Node"
    amps = geometry_ampacity(d / "LineGeometry.dss", d / "WireData.dss")
    assert amps["3ph_h-397_acsr397_acsr397_acsr2/0_acsr"] == (630.0, 630.0)  # neutral 2/0: 300
    assert amps["1ph-x4_acsrx1/0_tpx"] == (150.0, 150.0)  # the phase, not the 205 A neutral
    assert amps["3ph_h-4_acsr2_acsr2_acsr4_acsr"] == (150.0, 150.0)  # the weakest phase
    assert amps["1ph-2_acsrxx2_acsr"] == (200.0, 200.0)


def test_every_placeholder_line_of_ieee8500_is_rated(rated8500) -> None:
    lines, rated = rated8500
    left = [n for n, (_, a, e) in lines.items() if (a, e) == OPENDSS_PLACEHOLDER_AMPS]
    assert not left
    assert lines["ln6108142-1"][1:] == (150.0, 150.0)  # 4 ACSR
    trunk = [n for n, (c, _, _) in lines.items() if c.startswith("3ph_h-397_acsr397_acsr397")]
    assert len(trunk) > 150 and all(lines[n][1:] == (630.0, 630.0) for n in trunk)
    # the script's own ratings: the 1/0 cables and the triplex secondaries (156 A, x1.25)
    assert lines["ln81048109-1"][1:] == (220.0, 220.0) and "ln81048109-1" not in rated
    triplex = [v for v in lines.values() if v[0] == "4/0triplex"]
    assert len(triplex) > 1000 and all(v[1:] == (156.0, 195.0) for v in triplex)


def test_switches_and_connectors_take_the_lines_in_series(rated8500) -> None:
    _, rated = rated8500
    assert rated["hvmv_sub_connector"] == 630.0  # the substation onto the 397 trunk
    assert rated["v9111_48332_sw"] == 150.0  # between two 4 ACSR three-phase lines
    assert rated["a8735_48332_sw"] == 630.0
    assert rated["cap_1a"] == 630.0  # a capacitor's jumper off the trunk


def test_a_geometry_naming_an_unknown_wire_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "w.dss").write_text("New WireData.a Normamps=100 Emergamps=120\n")
    (tmp_path / "g.dss").write_text(
        "New LineGeometry.g1 nconds=2 nphases=1\n~ cond=1 wire=a x=0 h=10\n"
        "~ cond=2 wire=b x=1 h=9\nNew LineGeometry.g2 nconds=2 nphases=1\n"
        "~ cond=1 wire=nosuch x=0 h=10\n~ cond=2 wire=a x=1 h=9\n"
    )
    with pytest.raises(ValidationError, match=r"g2.*nosuch"):
        geometry_ampacity(tmp_path / "g.dss", tmp_path / "w.dss")


def test_normal_and_emergency_ratings_are_set_apart() -> None:
    from gridpilot.model.importers.opendss import DssSession

    sess = DssSession()
    for cmd in (
        "new circuit.t basekv=12.47 bus1=a",
        "new linecode.c1 nphases=3 r1=0.1 x1=0.3 units=km",
        "new line.j bus1=a bus2=b r1=0.001 x1=0.01 length=0.001",
        "new line.x bus1=b bus2=c linecode=c1 length=1",
    ):
        sess.command(cmd)
    assert rate_lines(sess.circuit, {"c1": (300.0, 360.0)}) == {"x": 300.0, "j": 300.0}
    sess.circuit.Lines.Name = "j"  # a connector with no linecode: as the line in series
    assert (sess.circuit.Lines.NormAmps, sess.circuit.Lines.EmergAmps) == (300.0, 360.0)
    assert set(feeder_ampacity("ieee13")) == set()  # nothing sourced: nothing set
