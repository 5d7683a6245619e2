"""Short-lived single-use tokens for the WebSocket, so that API keys stay out of URLs.

``POST /api/ws-token`` (with the key in the ``X-API-Key`` header) issues one; the dashboard
opens ``/api/ws?token=...`` with it. A token is valid for ``ttl_s`` seconds and once.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

Who = tuple[str, str]


@dataclass
class WsTokens:
    """Issued tokens: ``{token: (expiry monotonic s, (name, role))}``, at most ``max_open`` at a time."""

    ttl_s: float = 60.0
    max_open: int = 1000
    _open: dict[str, tuple[float, Who]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def issue(self, who: Who) -> str:
        """A new token for ``who`` (expired ones are dropped; the oldest when too many are open)."""
        now = time.monotonic()
        tok = secrets.token_urlsafe(24)
        with self._lock:
            for k in [k for k, (exp, _) in self._open.items() if exp <= now]:
                del self._open[k]
            while len(self._open) >= self.max_open:
                del self._open[next(iter(self._open))]
            self._open[tok] = (now + self.ttl_s, who)
        return tok

    def redeem(self, token: str | None) -> Who | None:
        """(name, role) of ``token`` if it is open and not expired (it is used up); else None."""
        if not token or len(token) > 100:
            return None
        with self._lock:
            got = self._open.pop(token, None)
        if got is None or got[0] <= time.monotonic():
            return None
        return got[1]
