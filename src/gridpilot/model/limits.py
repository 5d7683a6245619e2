"""One set of operating limits (:class:`OperatingLimits`) shared by FLISR, the guard, volt/var,
flex, the market and the dashboard.

The one spelling of each limit:

- ``v_min_pu`` / ``v_max_pu``: the voltage band, per unit;
- ``loading_max_pct``: the branch loading limit, percent (lines I/Imax, transformers S/Sn).

Older spellings (``vmin_pu``, ``vmax_pu``, ``max_loading_pct``, ``line_limit_pct``) are mapped
to these in one place, :data:`ALIASES` / :func:`canonical_limit_names`, for the public APIs that
still accept them. Measured *results* (e.g. a summary's ``vmin_pu``) are not limits and keep
their names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from gridpilot.errors import Issue, ValidationError

#: the one name of each limit
LIMIT_FIELDS: tuple[str, ...] = ("v_min_pu", "v_max_pu", "loading_max_pct")
#: older spellings still accepted by public APIs, mapped to the one name
ALIASES: dict[str, str] = {
    "vmin_pu": "v_min_pu",
    "vmax_pu": "v_max_pu",
    "max_loading_pct": "loading_max_pct",
    "line_limit_pct": "loading_max_pct",
}
V_CEILING_PU = 2.0
LOADING_CEILING_PCT = 1000.0


def _bad(field: str, value: Any, message: str) -> ValidationError:
    return ValidationError(issues=[Issue("limits", field, message, value=value)])


def _number(field: str, value: Any) -> float:
    if isinstance(value, bool):
        raise _bad(field, value, "must be a number")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise _bad(field, value, "must be a number") from None
    if out != out or out in (float("inf"), float("-inf")):
        raise _bad(field, value, "must be finite")
    return out


def validate_limits(v_min_pu: Any, v_max_pu: Any, loading_max_pct: Any) -> None:
    """Raise :class:`ValidationError` naming the field and value unless
    0 < v_min_pu < v_max_pu <= 2 pu and 0 < loading_max_pct <= 1000 %."""
    lo = _number("v_min_pu", v_min_pu)
    hi = _number("v_max_pu", v_max_pu)
    load = _number("loading_max_pct", loading_max_pct)
    if lo <= 0:
        raise _bad("v_min_pu", v_min_pu, "must be above 0 pu")
    if hi > V_CEILING_PU:
        raise _bad("v_max_pu", v_max_pu, f"must be at most {V_CEILING_PU} pu")
    if hi <= lo:
        raise _bad("v_max_pu", v_max_pu, f"must be above v_min_pu ({v_min_pu})")
    if not 0 < load <= LOADING_CEILING_PCT:
        raise _bad("loading_max_pct", loading_max_pct, f"must be in (0, {LOADING_CEILING_PCT}] %")


@dataclass(frozen=True)
class OperatingLimits:
    """The operating limits: voltage band ``v_min_pu``..``v_max_pu`` (pu) and branch loading
    ``loading_max_pct`` (%, lines I/Imax, transformers S/Sn). Validated on construction
    (:func:`validate_limits`); frozen, so one object can be shared safely. Defaults: the
    statutory planning band 0.95..1.05 pu, 100 %.
    """

    v_min_pu: float = 0.95
    v_max_pu: float = 1.05
    loading_max_pct: float = 100.0

    def __post_init__(self) -> None:
        validate_limits(self.v_min_pu, self.v_max_pu, self.loading_max_pct)
        for name in LIMIT_FIELDS:
            object.__setattr__(self, name, float(getattr(self, name)))

    @property
    def operating(self) -> OperatingLimits:
        """These limits as a plain :class:`OperatingLimits` (subclasses carry more fields)."""
        return OperatingLimits(self.v_min_pu, self.v_max_pu, self.loading_max_pct)

    def as_dict(self) -> dict[str, float]:
        """``{"v_min_pu", "v_max_pu", "loading_max_pct"}`` (pu, pu, %)."""
        return {k: v for k, v in asdict(self.operating).items()}

    @classmethod
    def of(cls, limits: OperatingLimits | None = None, /, **kw: Any) -> OperatingLimits:
        """An :class:`OperatingLimits` from ``limits`` (or the defaults) with the fields in ``kw``
        replaced; ``kw`` may use the old spellings (:func:`canonical_limit_names`), ``None``
        values are ignored."""
        base = limits.operating if limits is not None else OperatingLimits()
        vals = base.as_dict()
        vals.update({k: v for k, v in canonical_limit_names(kw).items() if v is not None})
        return OperatingLimits(**vals)


def canonical_limit_names(kw: dict[str, Any]) -> dict[str, Any]:
    """``kw`` with the old limit spellings (:data:`ALIASES`) renamed to the one name; raises
    :class:`ValidationError` when one limit is given twice or a name is not a limit."""
    out: dict[str, Any] = {}
    for key, value in kw.items():
        name = ALIASES.get(key, key)
        if name not in LIMIT_FIELDS:
            raise _bad(key, value, f"is not an operating limit (one of {', '.join(LIMIT_FIELDS)})")
        if name in out and value is not None and out[name] is not None:
            raise _bad(key, value, f"given twice (as {name} too)")
        if value is not None or name not in out:
            out[name] = value
    return out
