"""OAuth2 client credentials for the VTN (``POST /auth/token``) and bearer-token checks.

Two roles, with the 3.0.1 scopes: a business-logic client (``bl``: ``read_all``,
``write_programs``, ``write_events``, ``write_subscriptions``, ``write_vens``) and a VEN
(``ven``: ``read_all``, ``write_reports``, ``write_subscriptions``, ``write_vens``), bound to its
VEN name. Secrets are kept as SHA-256 digests; tokens are opaque random strings valid
``token_ttl_s`` (an unknown or expired token: 401; a missing scope: 403).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from gridpilot.errors import ValidationError
from gridpilot.protocols.adapter import clean_id

ROLE_SCOPES: dict[str, frozenset[str]] = {
    "bl": frozenset(
        {"read_all", "write_programs", "write_events", "write_subscriptions", "write_vens"}
    ),
    "ven": frozenset({"read_all", "write_reports", "write_subscriptions", "write_vens"}),
}
MAX_TOKENS_PER_CLIENT = 8


@dataclass(frozen=True)
class Principal:
    """Who a token speaks for: client id, role (``bl`` | ``ven``), VEN name (VENs), scopes."""

    client_id: str
    role: str
    ven_name: str | None
    scopes: frozenset[str]


@dataclass
class _Client:
    client_id: str
    digest: bytes
    role: str
    ven_name: str | None


class TokenError(Exception):
    """An OAuth2 failure: ``status`` (400/401/403) and the RFC 6749 ``error`` code."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


class OAuthServer:
    """Clients, token issue and token checks (thread-safe)."""

    def __init__(self, token_ttl_s: int = 3600) -> None:
        self.token_ttl_s = int(token_ttl_s)
        self._clients: dict[str, _Client] = {}
        self._tokens: dict[str, tuple[Principal, float]] = {}
        self._by_client: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def add_client(
        self, client_id: str, secret: str, role: str, ven_name: str | None = None
    ) -> None:
        """Register a client: ``role`` ``bl`` or ``ven`` (a VEN needs its ``ven_name``)."""
        cid = clean_id(client_id, "client_id")
        if role not in ROLE_SCOPES:
            raise ValidationError(f"role: must be 'bl' or 'ven', got {role!r}")
        if role == "ven":
            ven_name = clean_id(ven_name or "", "ven_name")
        if not isinstance(secret, str) or len(secret) < 16:
            raise ValidationError(f"secret of {cid}: must be at least 16 characters")
        self._clients[cid] = _Client(cid, hashlib.sha256(secret.encode()).digest(), role, ven_name)

    def issue(
        self, grant_type: str, client_id: str, client_secret: str, scope: str | None = None
    ) -> dict[str, object]:
        """A ``clientCredentialResponse`` for valid credentials; raises :class:`TokenError`."""
        if grant_type != "client_credentials":
            raise TokenError(400, "unsupported_grant_type", "only client_credentials is supported")
        cl = self._clients.get(client_id)
        got = hashlib.sha256(client_secret.encode()).digest()
        if cl is None or not hmac.compare_digest(cl.digest, got):
            raise TokenError(401, "invalid_client", "unknown client or wrong secret")
        allowed = ROLE_SCOPES[cl.role]
        asked = frozenset(scope.split()) if scope else allowed
        if not asked <= allowed:
            raise TokenError(400, "invalid_scope", f"scopes not granted: {sorted(asked - allowed)}")
        tok = secrets.token_urlsafe(32)
        now = time.time()
        with self._lock:
            mine = self._by_client.setdefault(cl.client_id, [])
            mine.append(tok)
            while len(mine) > MAX_TOKENS_PER_CLIENT:  # oldest tokens of this client expire
                self._tokens.pop(mine.pop(0), None)
            self._tokens[tok] = (
                Principal(cl.client_id, cl.role, cl.ven_name, asked),
                now + self.token_ttl_s,
            )
        return {
            "access_token": tok,
            "token_type": "Bearer",
            "expires_in": self.token_ttl_s,
            "scope": " ".join(sorted(asked)),
        }

    def check(self, authorization: str | None, scope: str) -> Principal:
        """The principal of a ``Bearer`` header having ``scope``; raises :class:`TokenError`
        (401 without a valid token, 403 without the scope)."""
        if not authorization or not authorization.startswith("Bearer "):
            raise TokenError(401, "invalid_token", "a bearer token is required")
        with self._lock:
            got = self._tokens.get(authorization[7:].strip())
        if got is None or got[1] < time.time():
            raise TokenError(401, "invalid_token", "unknown or expired token")
        if scope not in got[0].scopes:
            raise TokenError(403, "insufficient_scope", f"the token lacks scope {scope}")
        return got[0]
