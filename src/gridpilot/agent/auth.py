"""API keys with roles: viewer < operator < admin. Keys are stored hashed (SHA-256)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

from gridpilot.errors import AuthError, ValidationError

ROLES = ("viewer", "operator", "admin")
_RANK = {r: i for i, r in enumerate(ROLES)}


def _h(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass
class KeyStore:
    """API keys by SHA-256 hash: ``{hash: (name, role)}``.

    ``KeyStore.generate()`` creates one fresh key per role and keeps the plain keys in
    ``issued`` (to print once); :meth:`add` registers a known key.
    """

    keys: dict[str, tuple[str, str]] = field(default_factory=dict)
    issued: dict[str, str] = field(default_factory=dict)

    @classmethod
    def generate(cls, names: tuple[str, ...] = ROLES) -> KeyStore:
        """A store with one new random key per role (``issued[role]`` holds the plain key)."""
        ks = cls()
        for role in names:
            key = f"gp_{role}_" + secrets.token_urlsafe(18)
            ks.add(key, role, name=role)
            ks.issued[role] = key
        return ks

    def add(self, key: str, role: str, name: str = "") -> None:
        """Register ``key`` with ``role`` (viewer, operator, admin)."""
        if role not in _RANK:
            raise ValidationError(f"role: unknown {role!r}; known: {', '.join(ROLES)}")
        if len(key) < 8:
            raise ValidationError("api key: must be at least 8 characters")
        self.keys[_h(key)] = (name or role, role)

    def identify(self, key: str | None) -> tuple[str, str] | None:
        """(name, role) of ``key``, or None if unknown."""
        if not key:
            return None
        h = _h(key)
        for known, who in self.keys.items():
            if hmac.compare_digest(known, h):
                return who
        return None

    def require(self, key: str | None, role: str) -> tuple[str, str]:
        """(name, role) of ``key`` if it has at least ``role``; else :class:`AuthError`.

        ``AuthError.status`` is 401 for a missing or unknown key, 403 for a too-low role.
        """
        who = self.identify(key)
        if who is None:
            err = AuthError("missing API key" if not key else "unknown API key")
            err.status = 401  # type: ignore[attr-defined]
            raise err
        if _RANK[who[1]] < _RANK[role]:
            err = AuthError(f"role {who[1]!r} may not do this; needs {role!r}")
            err.status = 403  # type: ignore[attr-defined]
            raise err
        return who
