"""Time-varying data kept apart from the static grid (the PyPSA idea).

A :class:`Profiles` holds a time index and a few named *shapes* (multipliers, one column per
shape). A component links to a shape through its ``p_profile``/``q_profile`` column; its value
at step ``t`` is ``base * shape[t, column]`` (``-1`` keeps the base value constant). This stays
compact for large grids: SimBench's year for thousands of loads needs only a few dozen shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from gridpilot.errors import Issue, ValidationError

STEP_15MIN_S = 900


@dataclass
class Profiles:
    """Named multiplier shapes over a common time index.

    ``index``: datetime64[s] array of length T; ``names``: the shapes' names; ``values``:
    (T, len(names)) float array of multipliers.
    """

    index: np.ndarray
    names: list[str]
    values: np.ndarray
    meta: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index = np.asarray(self.index, dtype="datetime64[s]")
        self.values = np.asarray(self.values, dtype=np.float64)
        issues: list[Issue] = []
        if self.values.ndim != 2 or self.values.shape != (self.index.size, len(self.names)):
            issues.append(
                Issue(
                    "profiles",
                    "values",
                    f"shape {self.values.shape} does not match "
                    f"{self.index.size} steps x {len(self.names)} names",
                )
            )
        elif not np.all(np.isfinite(self.values)):
            t, k = np.argwhere(~np.isfinite(self.values))[0]
            issues.append(
                Issue(
                    "profiles",
                    self.names[k],
                    f"non-finite value at step {t}",
                    value=float(self.values[t, k]),
                )
            )
        if len(set(self.names)) != len(self.names):
            issues.append(Issue("profiles", "names", "duplicate shape names"))
        if issues:
            raise ValidationError(issues=issues)

    @property
    def steps(self) -> int:
        """Number of time steps T."""
        return int(self.index.size)

    def column(self, name: str) -> int:
        """Column number of shape ``name``."""
        try:
            return self.names.index(name)
        except ValueError:
            raise ValidationError(
                issues=[Issue("profiles", "names", "unknown shape", value=name)]
            ) from None

    def scale(
        self, base: np.ndarray, columns: np.ndarray, steps: slice | np.ndarray | None = None
    ) -> np.ndarray:
        """Absolute values (T', n) = ``base`` times the linked shape (constant where column < 0)."""
        sel = self.values if steps is None else self.values[steps]
        cols = np.asarray(columns, dtype=np.int64)
        base = np.asarray(base, np.float64)
        linked = cols >= 0
        if not linked.any():
            out = np.empty((sel.shape[0], cols.size))
            out[:] = base
            return out
        if not linked.all():  # unlinked columns read a column of ones appended to the shapes
            ext = np.empty((sel.shape[0], sel.shape[1] + 1))
            ext[:, :-1] = sel
            ext[:, -1] = 1.0
            sel, cols = ext, np.where(linked, cols, sel.shape[1])
        out = np.take(sel, cols, axis=1).astype(np.float64, copy=False)
        out *= base
        return out


def default_profiles(
    steps: int = 96 * 366, start: str = "2025-01-01", step_s: int = STEP_15MIN_S, seed: int = 7
) -> Profiles:
    """gridpilot's documented default shapes, for grids without their own profiles.

    Shapes (peak about 1.0): ``residential`` (morning and evening peaks, higher in winter),
    ``commercial`` (weekday office hours), ``pv`` (clear-sky bell from the sun's elevation at
    50° N, seasonal day length, day-to-day cloudiness), ``wind`` (a smooth random walk,
    capacity factor about 0.3). Reproducible for a given seed. See docs/grids.md.
    """
    full = max(steps, 96 * 366 * STEP_15MIN_S // step_s)  # same shapes whatever the length asked
    index, values = _default_shapes(full, start, step_s, seed)
    return Profiles(
        index[:steps].copy(),
        ["residential", "commercial", "pv", "wind"],
        values[:steps].copy(),
        {"source": "gridpilot default shapes", "seed": str(seed)},
    )


@lru_cache(maxsize=4)
def _default_shapes(
    steps: int, start: str, step_s: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The default shapes' (index, values), computed once per argument set (read-only arrays)."""
    rng = np.random.default_rng(seed)
    t0 = np.datetime64(start, "s")
    index = t0 + np.arange(steps) * np.timedelta64(step_s, "s")
    sec = (index - t0).astype(np.int64).astype(np.float64)
    day = sec / 86400.0
    hour = (day % 1.0) * 24.0
    doy = (np.asarray(index, "datetime64[D]") - np.asarray(index, "datetime64[Y]")).astype(int)
    weekday = (np.asarray(index, "datetime64[D]").astype(np.int64) + 3) % 7  # 0 = Monday
    winter = 0.5 * (1 + np.cos(2 * np.pi * (doy - 15) / 365.25))  # 1 mid-Jan, 0 mid-July
    morning = np.exp(-0.5 * ((hour - 7.5) / 1.3) ** 2)
    evening = np.exp(-0.5 * ((hour - 19.0) / 2.0) ** 2)
    night = 0.35
    residential = night + 0.35 * morning + 0.65 * evening
    residential *= 0.8 + 0.3 * winter
    residential /= residential.max()
    office = np.clip(np.sin(np.pi * (hour - 7.0) / 11.0), 0, None) * (weekday < 5)
    commercial = 0.3 + 0.7 * office
    commercial *= 0.9 + 0.1 * winter
    commercial /= commercial.max()
    # sun elevation at 50°N: declination and hour angle
    decl = np.deg2rad(23.44) * np.sin(2 * np.pi * (doy - 81) / 365.0)
    lat = np.deg2rad(50.0)
    ha = np.deg2rad(15.0 * (hour - 12.0))
    sin_el = np.sin(lat) * np.sin(decl) + np.cos(lat) * np.cos(decl) * np.cos(ha)
    clear = np.clip(sin_el, 0, None) ** 1.2
    days = int(np.ceil(day[-1])) + 1 if steps else 1
    cloud_day = np.clip(rng.beta(2.5, 1.2, days), 0.05, 1.0)
    pv = clear * cloud_day[day.astype(int)]
    pv /= max(pv.max(), 1e-9)
    walk = np.cumsum(rng.normal(0, 0.08, steps))
    kernel = np.ones(24) / 24
    smooth = np.convolve(
        walk - np.convolve(walk, np.ones(2001) / 2001, mode="same"), kernel, mode="same"
    )
    wind = 1 / (1 + np.exp(-(smooth * 2.0 - 0.9)))
    wind = np.clip(wind, 0, 1)
    values = np.column_stack([residential, commercial, pv, wind])
    index.flags.writeable = False
    values.flags.writeable = False
    return index, values
