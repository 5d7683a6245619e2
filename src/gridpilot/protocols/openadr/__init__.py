"""OpenADR 3.0.1: gridpilot's VTN (FastAPI router), OAuth2 client credentials, the DR bridge.

>>> vtn = Vtn(); vtn.oauth.add_client("bl-1", "a-secret-of-16+chars", "bl")
>>> vtn.oauth.add_client("ven-7", "another-secret-16+", "ven", ven_name="house-7")
>>> app.include_router(openadr_router(vtn))        # base URL .../openadr3
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from gridpilot.protocols.openadr.bridge import PROGRAM_NAME, DrPublisher
from gridpilot.protocols.openadr.routes import Vtn, openadr_router

CLIENTS_ENV = "GRIDPILOT_OPENADR_CLIENTS"


def load_clients(vtn: Vtn, path: str | Path) -> int:
    """Add the OAuth2 clients listed in a JSON file (``[{"client_id", "secret", "role",
    "ven_name"}]``); returns how many. Raises ``ValidationError`` naming a bad entry."""
    from gridpilot.errors import ValidationError

    try:
        items = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValidationError(f"{CLIENTS_ENV}: cannot read {str(path)[:200]!r}: {exc}") from None
    if not isinstance(items, list):
        raise ValidationError(f"{CLIENTS_ENV}: must hold a JSON list, got {type(items).__name__}")
    for it in items:
        vtn.oauth.add_client(
            str(it.get("client_id", "")),
            str(it.get("secret", "")),
            str(it.get("role", "")),
            it.get("ven_name"),
        )
    return len(items)


def openadr_for(orch: Any, clients: str | None = None) -> FastAPI:
    """The VTN for the API over ``orch``, as an ASGI app to mount at ``/openadr3`` (its own
    OAuth2 and its own OpenAPI document, apart from the API's keys): the loop's DR records are
    published as events before each read and the VENs' reports flow back into them; OAuth2
    clients from ``clients`` or ``$GRIDPILOT_OPENADR_CLIENTS``. When the loop's world is an
    ``OpenAdrWorld`` (DR only through OpenADR), its VTN is the one served, already publishing."""
    own = getattr(orch.world, "vtn", None)  # ``demo --protocols openadr``: the gateways' VTN
    vtn = own if isinstance(own, Vtn) else Vtn()
    path = clients or os.environ.get(CLIENTS_ENV)
    if path:
        load_clients(vtn, path)
    flexdr = getattr(orch, "flexdr", None)
    if flexdr is not None and vtn is not own:  # that world publishes the loop's DR itself

        def records() -> list[dict[str, Any]]:
            with orch.lock:  # the loop's thread appends records
                return list(flexdr.events(limit=100))

        def delivered(record_id: str, mw: float) -> None:
            with orch.lock:
                for r in flexdr.records:
                    if str(r.id) == record_id:
                        r.reported_reduction_mw = float(mw)

        pub = DrPublisher(vtn.store, records, delivered)
        vtn.syncs.append(pub.sync)
    sub = FastAPI(title="gridpilot OpenADR 3.0.1 VTN", version="3.0.1")
    sub.include_router(openadr_router(vtn, prefix=""))
    sub.state.vtn = vtn
    return sub


__all__ = ["PROGRAM_NAME", "DrPublisher", "Vtn", "load_clients", "openadr_for", "openadr_router"]
