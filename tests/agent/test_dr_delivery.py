"""A DR event whose devices under-deliver: delivered vs target, the alarm, the loop's top-up and
its audit trail (issue #21 item 20)."""

from __future__ import annotations

from typing import Any

import numpy as np

from gridpilot.agent import Action, FieldWorld, Orchestrator, Plan
from gridpilot.agent.drdelivery import DeliveryCheck
from gridpilot.field import Command

EVENING = 200 * 96 + 17 * 4  # a summer day, 17:00


class _DeafWorld(FieldWorld):
    """The field world whose devices ignore the set points of the events in ``deaf`` (a
    gateway that acknowledges and does nothing); releases still arrive."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.deaf: set[str] = set()
        self.dropped = 0

    def apply(self, cmds: list[Command]) -> list[Any]:
        keep = []
        for c in cmds:
            ev = c.cmd_id.split(":")[0]
            if ev in self.deaf and not c.cmd_id.endswith(":release"):
                self.dropped += 1
                continue
            keep.append(c)
        return super().apply(keep)


def _orch(grid: Any) -> tuple[_DeafWorld, Orchestrator]:
    w = _DeafWorld(grid, start_step=EVENING)
    return w, Orchestrator(w, policies=[], telemetry=False, se_every_steps=0)


def test_an_under_delivering_event_raises_the_alarm_and_is_topped_up(fleet_grid: Any) -> None:
    w, orch = _orch(fleet_grid)
    assert orch.flexdr is not None
    check = orch.flexdr.check
    assert check == DeliveryCheck() and check.alarm_share == 0.8 and check.settle_s == 300
    orch.run(5)
    w.deaf.add("dr-1")  # the first event's devices will not follow their set points
    out = orch.submit(Plan([Action("dr", None, 0.5)], "evening peak", "operator"), "alice")
    assert out["status"] == "done"
    first = orch.flexdr.records[-1]
    assert first.id == "dr-1" and first.status == "active" and first.target_mw > 0.1
    steps_to_settle = int(check.settle_s / w.step_s)
    for _ in range(steps_to_settle - 1):  # not before the settling time
        orch.step()
        assert "dr_under_delivery" not in orch.alarms
    assert w.dropped > 0 and first.delivered  # measured from the devices, interval by interval
    assert max(x for _, x in first.delivered) < 0.2 * first.target_mw
    for _ in range(3):
        orch.step()
    # delivered vs target, the alarm and the reaction
    assert first.delivered_share is not None and first.delivered_share < check.alarm_share
    assert first.status == "topped-up" and first.reaction.startswith("topped up")
    alarm = orch.alarms["dr_under_delivery"]
    assert "dr-1" in alarm["text"] and "target" in alarm["text"]
    assert any(e["kind"] == "alarm" and "dr-1 under-delivers" in e["text"] for e in orch.events)
    top = orch.flexdr.active.record
    assert top.topup_of == "dr-1" and top.level > first.level
    assert top.requested_level == 0.5 and top.source == "operator:alice"
    audit = orch.audit.entries(kind="dr_event")
    assert any(a["status"] == "topped-up" for a in audit)
    assert any("top-up of dr-1" in a["why"] and a["status"] == "dispatched" for a in audit)
    # the loop's own level again does not undo the top-up
    assert orch.flexdr.set_level(0.5, orch.last.time) == []
    # the top-up's devices do follow: it delivers, and the alarm clears
    for _ in range(steps_to_settle + 3):
        orch.step()
    assert top.delivered_share is not None and top.delivered_share >= check.alarm_share
    assert "dr_under_delivery" not in orch.alarms
    assert any(
        e["kind"] == "alarm_cleared" and e.get("alarm") == "dr_under_delivery" for e in orch.events
    )


def test_an_event_that_delivers_raises_nothing(fleet_grid: Any) -> None:
    _, orch = _orch(fleet_grid)
    orch.run(5)
    orch.submit(Plan([Action("dr", None, 0.5)], "evening peak", "operator"), "alice")
    orch.run(15)
    rec = orch.flexdr.records[-1]
    assert rec.id == "dr-1" and rec.status == "active" and not rec.reaction
    assert rec.delivered_share is not None and rec.delivered_share >= 0.8
    assert np.isclose(rec.delivered_mw, rec.delivered_share * rec.target_mw)
    assert "dr_under_delivery" not in orch.alarms


def test_releasing_the_dr_clears_the_alarm(fleet_grid: Any) -> None:
    w, orch = _orch(fleet_grid)
    orch.run(5)
    w.deaf.update({"dr-1", "dr-2"})  # neither the event nor its top-up is followed
    orch.submit(Plan([Action("dr", None, 0.5)], "evening peak", "operator"), "alice")
    orch.run(int(orch.flexdr.check.settle_s / w.step_s) + 2)
    assert "dr_under_delivery" in orch.alarms
    orch.submit(Plan([Action("dr", None, 0.0)], "peak over", "operator"), "alice")
    orch.step()
    assert orch.flexdr.active is None and "dr_under_delivery" not in orch.alarms
