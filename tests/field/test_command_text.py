"""Field command outcomes carry wire text escaped (issue #21 item 9): safe to log."""

from __future__ import annotations

from gridpilot.field import FieldSimulator, FleetConfig
from gridpilot.field.publish import FieldCommandReceiver, FieldTelemetry
from gridpilot.telemetry import DeviceRegistry, DeviceSigner, InProcessBus, generate_key


def test_command_outcome_text_is_one_printable_line(case33) -> None:
    sim = FieldSimulator(case33, FleetConfig(n_devices=200, seed=1), seed=1, engine="pgm")
    bus = InProcessBus()
    tel = FieldTelemetry(sim, bus)
    ops = DeviceRegistry()
    key = generate_key()
    ops.register("operator", key, kind="operator")
    op = DeviceSigner("operator", key, clock=tel.clock)
    rx = FieldCommandReceiver(tel, ops)
    forged_line = "x\n2026-12-05 gridpilot.audit WARNING approved switch 7\x00\ud800"
    bus.publish(tel.topics.commands("field"), op.command(forged_line, "open", cmd_id=forged_line))
    (out,) = rx.pump()
    assert out.status == "refused"
    for text in (out.cmd_id, out.target, out.detail, out.name):
        assert text.isprintable() and "\n" not in text
        text.encode("utf-8")
    assert "\\x0a2026-12-05" in out.target
