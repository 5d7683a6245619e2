"""The scheduler's limits and weights (:class:`PlanConfig`), shared by the window LP and the planners."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gridpilot.errors import ValidationError
from gridpilot.model.limits import OperatingLimits, validate_limits


@dataclass
class PlanConfig:
    """Limits and weights of the scheduler (units in the names; EUR).

    The network limits ``vmin_pu``/``vmax_pu``/``line_limit_pct`` are the scheduler's old
    spellings of the shared :class:`~gridpilot.model.limits.OperatingLimits` (``v_min_pu``,
    ``v_max_pu``, ``loading_max_pct``): build a config from shared limits with
    :meth:`from_limits`, read them back with :attr:`limits`. Validated the same way.
    """

    vmin_pu: float = 0.95
    vmax_pu: float = 1.05
    line_limit_pct: float = 100.0
    trafo_limit_pct: float = 100.0
    co2_eur_per_t: float = 80.0
    peak_eur_per_mw: float = 400.0
    battery_wear_eur_per_mwh: float = 15.0
    v2g_fee_eur_per_mwh: float = 60.0
    curtail_eur_per_mwh: float = 80.0
    slack_v_eur_per_pu: float = 2e4
    slack_mw_eur_per_mw: float = 1e4
    horizon_steps: int = 144
    commit_steps: int = 96
    strict: bool = False
    margin_pu: float = 0.003
    corrections: int = 3
    band_margin_pu: float = 0.002
    exact_check_devices: int = 30_000
    max_groups: int = 16
    q_support: bool = True
    q_max_frac: float = 0.44
    q_polygon_sides: int = 12
    q_eur_per_mvarh: float = 2.0
    warm_start: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.q_max_frac <= 1.0:
            raise ValidationError(
                f"plan config: q_max_frac must be in [0, 1], got {self.q_max_frac}"
            )
        if self.q_polygon_sides < 4:
            raise ValidationError(
                f"plan config: q_polygon_sides must be >= 4, got {self.q_polygon_sides}"
            )
        if self.q_eur_per_mvarh < 0:
            raise ValidationError(
                f"plan config: q_eur_per_mvarh must be >= 0, got {self.q_eur_per_mvarh}"
            )
        validate_limits(self.vmin_pu, self.vmax_pu, self.line_limit_pct)
        if self.commit_steps <= 0 or self.horizon_steps < self.commit_steps:
            raise ValidationError(
                f"plan config: need 0 < commit_steps <= horizon_steps, got {self.commit_steps}, "
                f"{self.horizon_steps}"
            )

    @property
    def limits(self) -> OperatingLimits:
        """The network limits as shared :class:`OperatingLimits` (pu, pu, %)."""
        return OperatingLimits(self.vmin_pu, self.vmax_pu, self.line_limit_pct)

    @classmethod
    def from_limits(cls, limits: OperatingLimits, **rest: Any) -> PlanConfig:
        """A config whose voltage band and line limit are the shared ``limits``; ``rest``: the
        scheduler's other fields."""
        return cls(
            vmin_pu=limits.v_min_pu,
            vmax_pu=limits.v_max_pu,
            line_limit_pct=limits.loading_max_pct,
            **rest,
        )
