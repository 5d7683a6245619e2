"""The OpenADR 3.0.1 VTN: paths, objects and status codes; OAuth2 roles; toadr3 as the VEN."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from gridpilot.protocols.openadr import DrPublisher, Vtn, openadr_router

BL = ("bl-1", "business-logic-secret")
VENS = {"ven-a": ("house-a", "secret-of-ven-a-123"), "ven-b": ("house-b", "secret-of-ven-b-456")}


def make_vtn() -> tuple[Vtn, FastAPI]:
    vtn = Vtn()
    vtn.oauth.add_client(BL[0], BL[1], "bl")
    for cid, (name, sec) in VENS.items():
        vtn.oauth.add_client(cid, sec, "ven", ven_name=name)
    app = FastAPI()
    app.include_router(openadr_router(vtn))
    return vtn, app


def tok(c: TestClient, cid: str, sec: str) -> dict[str, str]:
    r = c.post(
        "/openadr3/auth/token",
        data={"grant_type": "client_credentials", "client_id": cid, "client_secret": sec},
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def spec_validator(shared_dir: Path, name: str) -> Any:
    yaml = pytest.importorskip("yaml")
    jsonschema = pytest.importorskip("jsonschema")
    path = shared_dir / "data/openadr3/3.0.1/openadr3.yaml"
    if not path.exists():
        pytest.skip("../shared/data/openadr3 not present")
    doc = yaml.safe_load(path.read_text())
    schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    return jsonschema.Draft4Validator(schema)  # OpenAPI 3.0 schemas are draft-4 style


EVENT = {
    "eventName": "shed",
    "intervalPeriod": {"start": "2026-07-01T16:00:00Z", "duration": "PT15M"},
    "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [2]}]}],
}


def test_token_roles_and_status_codes(shared_dir: Path) -> None:
    _, app = make_vtn()
    with TestClient(app) as c:
        bl = tok(c, *BL)
        assert (
            c.post(
                "/openadr3/auth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": "bl-1",
                    "client_secret": "wrong-secret-xxxxxx",
                },
            ).status_code
            == 401
        )
        assert (
            c.post(
                "/openadr3/auth/token",
                data={"grant_type": "password", "client_id": "bl-1", "client_secret": BL[1]},
            ).status_code
            == 400
        )
        assert c.get("/openadr3/programs").status_code == 401
        assert (
            c.get("/openadr3/programs", headers={"Authorization": "Bearer forged"}).status_code
            == 401
        )
        r = c.post("/openadr3/programs", json={"programName": "p1"}, headers=bl)
        assert r.status_code == 201
        prog = r.json()
        spec_validator(shared_dir, "program").validate(prog)
        assert prog["objectType"] == "PROGRAM" and prog["id"]
        assert (
            c.post("/openadr3/programs", json={"programName": "p1"}, headers=bl).status_code == 409
        )
        bad = c.post("/openadr3/programs", json={"programName": "x" * 200}, headers=bl)
        assert bad.status_code == 400 and "programName" in bad.json()["detail"]
        spec_validator(shared_dir, "problem").validate(bad.json())
        ven = tok(c, "ven-a", VENS["ven-a"][1])
        assert (
            c.post("/openadr3/programs", json={"programName": "p2"}, headers=ven).status_code == 403
        )
        assert (
            c.post(
                "/openadr3/events", json={"programID": prog["id"], **EVENT}, headers=ven
            ).status_code
            == 403
        )
        ev = c.post("/openadr3/events", json={"programID": prog["id"], **EVENT}, headers=bl)
        assert ev.status_code == 201
        spec_validator(shared_dir, "event").validate(ev.json())
        assert c.get(f"/openadr3/events/{ev.json()['id']}", headers=ven).status_code == 200
        assert c.get("/openadr3/events/nope", headers=ven).status_code == 404
        assert c.get("/openadr3/events?limit=0", headers=ven).status_code == 400
        assert c.post("/openadr3/events", content=b"{not json", headers=bl).status_code == 400
        assert (
            c.post(
                "/openadr3/events", json={"programID": "missing", **EVENT}, headers=bl
            ).status_code
            == 400
        )
        put = c.put(
            f"/openadr3/programs/{prog['id']}",
            json={"programName": "p1", "country": "DE"},
            headers=bl,
        )
        assert put.status_code == 200 and put.json()["country"] == "DE"
        assert put.json()["createdDateTime"] == prog["createdDateTime"]


def test_a_ven_sees_nothing_of_another_ven() -> None:
    _, app = make_vtn()
    with TestClient(app) as c:
        bl = tok(c, *BL)
        a, b = tok(c, "ven-a", VENS["ven-a"][1]), tok(c, "ven-b", VENS["ven-b"][1])
        pid = c.post("/openadr3/programs", json={"programName": "p"}, headers=bl).json()["id"]
        only_a = c.post(
            "/openadr3/events",
            headers=bl,
            json={
                "programID": pid,
                "targets": [{"type": "VEN_NAME", "values": ["house-a"]}],
                **EVENT,
            },
        ).json()
        assert [e["id"] for e in c.get("/openadr3/events", headers=a).json()] == [only_a["id"]]
        assert c.get("/openadr3/events", headers=b).json() == []
        assert c.get(f"/openadr3/events/{only_a['id']}", headers=b).status_code == 403
        va = c.post("/openadr3/vens", json={"venName": "house-a"}, headers=a)
        assert va.status_code == 201
        assert c.post("/openadr3/vens", json={"venName": "house-a"}, headers=b).status_code == 403
        assert c.get(f"/openadr3/vens/{va.json()['id']}", headers=b).status_code == 403
        assert c.get("/openadr3/vens", headers=b).json() == []
        res = c.post(
            f"/openadr3/vens/{va.json()['id']}/resources", json={"resourceName": "ev1"}, headers=a
        )
        assert res.status_code == 201 and res.json()["venID"] == va.json()["id"]
        assert (
            c.post(
                f"/openadr3/vens/{va.json()['id']}/resources", json={"resourceName": "x"}, headers=b
            ).status_code
            == 403
        )
        rep = {
            "programID": pid,
            "eventID": only_a["id"],
            "clientName": "house-a",
            "resources": [
                {
                    "resourceName": "ev1",
                    "intervals": [{"id": 0, "payloads": [{"type": "DEMAND", "values": [1.5]}]}],
                }
            ],
        }
        assert c.post("/openadr3/reports", json=rep, headers=b).status_code == 403  # not its name
        assert c.post("/openadr3/reports", json=rep, headers=bl).status_code == 403  # VENs report
        r = c.post("/openadr3/reports", json=rep, headers=a)
        assert r.status_code == 201
        assert c.get("/openadr3/reports", headers=b).json() == []
        assert c.get(f"/openadr3/reports/{r.json()['id']}", headers=b).status_code == 403
        assert c.delete(f"/openadr3/reports/{r.json()['id']}", headers=b).status_code == 403
        assert len(c.get("/openadr3/reports", headers=bl).json()) == 1
        sub = {
            "clientName": "house-b",
            "programID": pid,
            "objectOperations": [
                {
                    "objects": ["EVENT"],
                    "operations": ["POST"],
                    "callbackUrl": "http://127.0.0.1:9/cb",
                }
            ],
        }
        assert c.post("/openadr3/subscriptions", json=sub, headers=b).status_code == 201
        assert c.get("/openadr3/subscriptions", headers=a).json() == []


def test_dr_records_become_events_and_reports_feed_delivered() -> None:
    vtn, app = make_vtn()
    recs = [
        {
            "id": "dr-1",
            "start": "2026-07-01T16:00:00",
            "level": 0.5,
            "buses": [7, 9],
            "expected_reduction_mw": [0.02, 0.03],
        }
    ]
    pub = DrPublisher(vtn.store, lambda: recs)
    vtn.syncs.append(pub.sync)
    with TestClient(app) as c:
        a = tok(c, "ven-a", VENS["ven-a"][1])
        c.post(
            "/openadr3/vens",
            json={"venName": "house-a", "targets": [{"type": "GROUP", "values": ["bus:7"]}]},
            headers=a,
        )
        evs = c.get("/openadr3/events", headers=a).json()
        assert len(evs) == 1 and len(evs[0]["intervals"]) == 2
        assert evs[0]["intervals"][0]["payloads"][0] == {"type": "SIMPLE", "values": [2]}
        b = tok(c, "ven-b", VENS["ven-b"][1])
        assert c.get("/openadr3/events", headers=b).json() == []  # not on buses 7 or 9
        assert pub.sync() == 0  # idempotent
        rep = {
            "programID": evs[0]["programID"],
            "eventID": evs[0]["id"],
            "clientName": "house-a",
            "resources": [
                {
                    "resourceName": "home",
                    "intervals": [
                        {
                            "id": k,
                            "payloads": [
                                {"type": "BASELINE", "values": [30.0]},
                                {"type": "DEMAND", "values": [30.0 - d]},
                            ],
                        }
                        for k, d in enumerate((18.0, 25.0))
                    ],
                }
            ],
        }
        assert c.post("/openadr3/reports", json=rep, headers=a).status_code == 201
        junk = dict(
            rep,
            resources=[
                {
                    "resourceName": "x",
                    "intervals": [
                        {
                            "id": 0,
                            "payloads": [
                                {"type": "BASELINE", "values": ["lots"]},
                                {"type": "DEMAND", "values": [True]},
                            ],
                        }
                    ],
                }
            ],
        )
        assert (
            c.post("/openadr3/reports", json=junk, headers=a).status_code == 201
        )  # kept, not counted
    d = pub.delivery(evs[0]["id"])
    assert (
        d["planned_kw"] == [20.0, 30.0]
        and d["delivered_kw"] == [18.0, 25.0]
        and d["vens"] == ["house-a"]
    )


def test_toadr3_ven_reads_events_and_posts_a_report(served: Any) -> None:
    toadr3 = pytest.importorskip("toadr3")
    import aiohttp

    vtn, app = make_vtn()
    recs = [
        {
            "id": "dr-9",
            "start": "2026-07-01T16:00:00Z",
            "level": 1.0,
            "buses": [],
            "expected_reduction_mw": [0.01],
        }
    ]
    pub = DrPublisher(vtn.store, lambda: recs)
    vtn.syncs.append(pub.sync)

    async def ven(base: str) -> tuple[Any, Any, Any]:
        async with aiohttp.ClientSession() as s:
            url = f"{base}/openadr3"
            cid, (name, sec) = "ven-a", VENS["ven-a"]
            token = await toadr3.acquire_access_token(
                s,
                f"{url}/auth/token",
                "client_credentials",
                {"scope": "read_all write_reports"},
                cid,
                sec,
            )
            progs = await toadr3.get_programs(s, url, token)
            events = await toadr3.get_events(s, url, token)
            e = events[0]
            rep = toadr3.models.Report(
                programID=e.program_id,
                eventID=e.id,
                clientName=name,
                resources=[
                    toadr3.models.ReportData(
                        resource_name="home",
                        intervals=[
                            toadr3.models.Interval(
                                id=0,
                                payloads=[
                                    toadr3.models.ValuesMap(type="BASELINE", values=[12.0]),
                                    toadr3.models.ValuesMap(type="DEMAND", values=[3.0]),
                                ],
                            )
                        ],
                    )
                ],
            )
            posted = await toadr3.post_report(s, url, token, rep)
            with pytest.raises(toadr3.ToadrError) as err:  # a forged token reads nothing
                await toadr3.get_programs(s, url, toadr3.AccessToken("forged", 60))
            return progs, events, (posted, err.value)

    with served(app) as base:
        progs, events, (posted, err) = asyncio.run(asyncio.wait_for(ven(base), 20))
    assert [p.program_name for p in progs] == ["gridpilot-dr"]
    assert events[0].intervals[0].payloads[0].values == [3]
    assert isinstance(events[0].interval_period.start, dt.datetime)
    assert posted.id and posted.client_name == "house-a"
    assert err.status_code in (401, 403)
    assert pub.delivery(events[0].id)["delivered_kw"] == [9.0]


def test_openadr3_client_roles_need_python_312() -> None:
    pytest.importorskip(
        "openadr3_client", reason="openadr3-client needs Python >= 3.12 (here 3.11)"
    )


def test_the_api_app_serves_the_vtn_with_the_loops_dr_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from gridpilot.agent import FieldWorld, Orchestrator, demo_grid
    from gridpilot.api import KeyStore, create_app

    clients = tmp_path / "clients.json"
    clients.write_text(
        json.dumps(
            [
                {
                    "client_id": "ven-a",
                    "secret": VENS["ven-a"][1],
                    "role": "ven",
                    "ven_name": "house-a",
                }
            ]
        )
    )
    orch = Orchestrator(FieldWorld(demo_grid("case33bw"), start_step=200 * 96 + 17 * 4))
    orch.run(1)
    with orch.lock:
        orch.flexdr.set_level(0.6, orch.last.time, source="operator:test", reason="drill")
    monkeypatch.setenv("GRIDPILOT_OPENADR_CLIENTS", str(clients))
    keys = KeyStore.generate()
    app = create_app(orch, keys)
    with TestClient(app) as c:
        a = tok(c, "ven-a", VENS["ven-a"][1])
        groups = [f"bus:{b}" for b in orch.flexdr.records[-1].buses]
        c.post(
            "/openadr3/vens",
            json={
                "venName": "house-a",
                "targets": [{"type": "GROUP", "values": groups or ["none"]}],
            },
            headers=a,
        )
        evs = c.get("/openadr3/events", headers=a).json()
        assert evs and evs[0]["intervals"][0]["payloads"][0]["type"] == "SIMPLE"
        # the VEN reports what it shed; the loop's DR record shows it beside its own measure
        rep = {
            "programID": evs[0]["programID"],
            "eventID": evs[0]["id"],
            "clientName": "house-a",
            "resources": [
                {
                    "resourceName": "home",
                    "intervals": [
                        {
                            "id": 0,
                            "payloads": [
                                {"type": "BASELINE", "values": [40.0]},
                                {"type": "DEMAND", "values": [28.0]},
                            ],
                        }
                    ],
                }
            ],
        }
        assert c.post("/openadr3/reports", json=rep, headers=a).status_code == 201
        dr = c.get("/api/dr", headers={"X-API-Key": keys.issued["viewer"]}).json()
        assert dr["events"][-1]["reported_reduction_mw"] == pytest.approx(0.012)
        assert c.get("/openadr3/events").status_code == 401


def test_subscribers_are_notified_only_of_what_they_may_see(served: Any) -> None:
    import time

    import httpx

    got: list[tuple[str, dict[str, Any]]] = []
    cb = FastAPI()

    @cb.post("/cb/{who}")
    async def callback(who: str, request: Request) -> dict[str, str]:
        got.append((who, await request.json()))
        return {}

    vtn, app = make_vtn()
    with served(cb) as cb_url, served(app) as base:
        url = f"{base}/openadr3"
        with httpx.Client(timeout=10) as c:

            def token(cid: str, sec: str) -> dict[str, str]:
                r = c.post(
                    f"{url}/auth/token",
                    data={
                        "grant_type": "client_credentials",
                        "client_id": cid,
                        "client_secret": sec,
                    },
                )
                return {"Authorization": f"Bearer {r.json()['access_token']}"}

            bl = token(*BL)
            pid = c.post(f"{url}/programs", json={"programName": "p"}, headers=bl).json()["id"]
            for cid, (name, sec) in VENS.items():
                sub = {
                    "clientName": name,
                    "programID": pid,
                    "objectOperations": [
                        {
                            "objects": ["EVENT"],
                            "operations": ["POST", "PUT"],
                            "callbackUrl": f"{cb_url}/cb/{name}",
                            "bearerToken": f"tok-{name}",
                        }
                    ],
                }
                assert (
                    c.post(f"{url}/subscriptions", json=sub, headers=token(cid, sec)).status_code
                    == 201
                )
            ev = {
                "programID": pid,
                "targets": [{"type": "VEN_NAME", "values": ["house-a"]}],
                **EVENT,
            }
            assert c.post(f"{url}/events", json=ev, headers=bl).status_code == 201
            for _ in range(200):
                if got:
                    break
                time.sleep(0.02)
            time.sleep(0.2)
    assert [w for w, _ in got] == ["house-a"], vtn.notifier.counts
    assert got[0][1]["objectType"] == "EVENT" and got[0][1]["operation"] == "POST"
    assert got[0][1]["object"]["targets"][0]["values"] == ["house-a"]
    assert vtn.notifier.counts["sent"] == 1


HOSTILE = [
    [],
    "x",
    1e308,
    None,
    {"programName": None},
    {"programName": ["a"]},
    {"programName": "p", "targets": "GROUP"},
    {"programName": "p", "targets": [{"type": 1}]},
    {"programID": "p", "intervals": [{"id": "zero", "payloads": []}]},
    {"programID": "p", "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [{}]}]}]},
    {"programID": "p", "intervalPeriod": {"start": "yesterday"}, "intervals": []},
    {
        "programID": "p",
        "intervalPeriod": {"start": "2026-01-01T00:00:00Z", "duration": "P"},
        "intervals": [],
    },
    {"programID": "../../etc", "intervals": []},
    {"venName": "v" * 10_000},
    {"clientName": "x", "programID": "p", "objectOperations": [{"objects": "EVENT"}]},
]


def test_hostile_bodies_get_4xx_never_a_server_error() -> None:
    _, app = make_vtn()
    with TestClient(app, raise_server_exceptions=False) as c:
        bl = tok(c, *BL)
        ven = tok(c, "ven-a", VENS["ven-a"][1])
        for path in ("/programs", "/events", "/reports", "/subscriptions", "/vens"):
            for body in HOSTILE:
                for h in (bl, ven):
                    r = c.post(f"/openadr3{path}", json=body, headers=h)
                    assert 400 <= r.status_code < 500, (path, body, r.status_code, r.text[:200])
        assert c.post("/openadr3/auth/token", content=b"\xff" * 100).status_code == 400
        assert c.post("/openadr3/programs", content=b"x" * (2 << 20), headers=bl).status_code == 413
        assert len(c.get("/openadr3/programs", headers=bl).json()) == 0  # nothing was stored


def test_a_field_gateway_as_a_toadr3_ven_follows_a_dr_event_and_reports(served: Any) -> None:
    import aiohttp

    from gridpilot.agent import FieldWorld, demo_grid
    from gridpilot.protocols.openadr.fieldven import FieldVen, GatewayConfig

    world = FieldWorld(demo_grid("case33bw"), start_step=200 * 96 + 17 * 4)
    world.observe()
    fleet = world.devices
    bus = int(world.grid.bus.ids[np.bincount(fleet.meter_bus[fleet.wh_meter]).argmax()])
    vtn, app = make_vtn()
    start = str(np.datetime64(world.time, "s")) + "Z"
    recs = [{"id": "dr-f", "start": start, "level": 1.0, "buses": [bus],
             "expected_reduction_mw": [0.01, 0.01]}]  # fmt: skip
    pub = DrPublisher(vtn.store, lambda: recs)
    vtn.syncs.append(pub.sync)
    cfg = GatewayConfig("ven-a", VENS["ven-a"][1], "house-a", (bus,))
    with served(app) as base:
        ven = FieldVen(cfg, world, f"{base}/openadr3")
        other = FieldVen(GatewayConfig("ven-b", VENS["ven-b"][1], "house-b", (bus + 1,)),
                         world, f"{base}/openadr3")  # fmt: skip

        async def go() -> tuple[list[str], list[str], Any]:
            async with aiohttp.ClientSession() as s:
                await ven.register(s)
                await other.register(s)
                got, none = await ven.poll(s), await other.poll(s)
                for _ in range(20):  # 20 one-minute steps: both 15-minute intervals sampled
                    world.advance()
                    world.observe()
                    ven.sample()
                return got, none, await ven.report(s, got[0])

        got, none, rep = asyncio.run(asyncio.wait_for(go(), 30))
    assert len(got) == 1 and none == []  # the event targets the gateway's bus only
    assert ven.water_heaters.size and fleet.wh_paused[ven.water_heaters].all()
    d = pub.delivery(got[0])
    a = ven.active[got[0]]
    assert d["vens"] == ["house-a"] and d["reported"] == [True, True]
    want = [round(a.baseline_kw, 3) - round(float(np.mean(a.samples[k])), 3) for k in (0, 1)]
    assert d["delivered_kw"] == pytest.approx(want)
    assert rep.client_name == "house-a"
    ven.release(got[0])
    assert not fleet.wh_paused[ven.water_heaters].any()
