"""Subscription notifications (webhooks): the VTN posts a 3.0.1 ``notification`` to each
subscriber's ``callbackUrl`` when an object it subscribed to is created, updated or deleted.

A subscriber is notified only of objects it may read (the same visibility as ``GET``); the
``bearerToken`` of its object operation goes in the ``Authorization`` header. Posts run as
tasks on the server's event loop, at most ``max_concurrent`` at a time, each bounded by
``timeout_s``; a failed post is counted and logged, never retried, never blocks a request.
Only ``http``/``https`` callbacks are accepted.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

from gridpilot.protocols.openadr.vtn import OBJECT_TYPES, VtnStore

log = logging.getLogger(__name__)


class Notifier:
    """Listener of a :class:`VtnStore` posting notifications; :attr:`counts` sent/failed/skipped."""

    def __init__(self, store: VtnStore, timeout_s: float = 5.0, max_concurrent: int = 256) -> None:
        self.store = store
        self.timeout_s = timeout_s
        self.max_concurrent = max_concurrent
        self.counts = {"sent": 0, "failed": 0, "skipped": 0}
        self._client: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        store.listen(self)

    def targets(self, kind: str, op: str, obj: dict[str, Any]) -> list[tuple[str, str | None]]:
        """(callbackUrl, bearerToken) of every subscription that should hear of this change."""
        otype = OBJECT_TYPES[kind]
        out = []
        for sid, sub in list(self.store.objects["subscription"].items()):
            owner = self.store.owners.get(sid)
            if owner is None or ("programID" in obj and sub["programID"] != obj["programID"]):
                continue
            if not self.store.visible(owner, kind, obj):
                continue
            for oo in sub["objectOperations"]:
                if otype in oo["objects"] and op in oo["operations"]:
                    url = str(oo["callbackUrl"])
                    if url.startswith(("http://", "https://")):
                        out.append((url, oo.get("bearerToken")))
                    break
        return out

    def __call__(self, kind: str, op: str, obj: dict[str, Any]) -> None:
        """Notify the subscribers of ``kind`` objects of operation ``op`` on ``obj``."""
        if kind == "subscription":
            return
        hits = self.targets(kind, op, obj)
        if not hits:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a change made outside the server's loop: nobody to post
            self.counts["skipped"] += len(hits)
            return
        body = {"objectType": OBJECT_TYPES[kind], "operation": op, "object": obj}
        for url, token in hits:
            t = loop.create_task(self._post(url, token, body))
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)

    async def _post(self, url: str, token: str | None, body: dict[str, Any]) -> None:
        if self._client is None or self._client.closed:
            self._client = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                connector=aiohttp.TCPConnector(limit=self.max_concurrent),
            )
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            async with self._client.post(url, json=body, headers=headers) as r:
                ok = r.status < 300
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("notification to %s failed: %r", url[:100], exc)
            ok = False
        self.counts["sent" if ok else "failed"] += 1

    async def close(self) -> None:
        """Close the HTTP client (on the loop that used it)."""
        if self._client is not None:
            await self._client.close()
