"""Direct multi-horizon linear forecaster: DLinear-style split, closed-form ridge in numpy.

For every origin and every series, the lookback window x (L values, standardised with the
training mean/std of that series) is instance-normalised by subtracting its last value (or
its mean), split DLinear-style into a moving-average trend and the seasonal remainder, and
mapped by one weight matrix W (shared by all series: channel-independent) plus an intercept
to the next H values. The fit is ridge regression in closed form:

    W(λ) = (FᵀF + λ·n·I)⁻¹ FᵀY     (F centred features, Y centred targets)

The trend/seasonal split is the linear map f = T x with T = [M; I − M] (M the moving
average). Ridge on f with penalty λ·n·‖W_f‖² equals, by the push-through identity, ridge on x
with the penalty matrix P = (TᵀT)⁻¹: W = (XᵀX + λ·n·P)⁻¹ XᵀY. So the split costs one L×L
solve per λ on top of the lookback Gram matrix, and changes only the ridge prior (trend and
seasonal weights shrunk separately), as in DLinear. Penalty λ (per horizon step) and lookback
L are chosen on the validation origins from validation Gram matrices (the validation MSE of
any W is a quadratic form in them), so no candidate needs a pass over the data. Nothing is
iterative; all of ETTh1 fits in seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from gridpilot.errors import Issue, ValidationError
from gridpilot.forecast.base import ForecastBatch, target_windows, values_at
from gridpilot.forecast.data import Repair
from gridpilot.forecast.lookback import LookbackFit, LookbackForecaster

DEFAULT_PENALTIES: tuple[float, ...] = (1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0)


def moving_average_matrix(length: int, kernel: int) -> np.ndarray:
    """(L, L) matrix M with (M x) the centred moving average of x, ends padded by repetition."""
    half = (kernel - 1) // 2
    m = np.zeros((length, length))
    for i in range(length):
        for k in range(i - half, i - half + kernel):
            m[i, min(max(k, 0), length - 1)] += 1.0 / kernel
    return m


class _Gram:
    """Sufficient statistics of a least-squares problem over windows: n, Σx, Σy, XᵀX, XᵀY, Σy²."""

    def __init__(self, d: int, h: int) -> None:
        self.n = 0
        self.sx = np.zeros(d)
        self.sy = np.zeros(h)
        self.xx = np.zeros((d, d))
        self.xy = np.zeros((d, h))
        self.yy = np.zeros(h)

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        self.n += len(x)
        self.sx += x.sum(0)
        self.sy += y.sum(0)
        self.xx += x.T @ x
        self.xy += x.T @ y
        self.yy += (y * y).sum(0)


class LinearForecaster(LookbackForecaster):
    """DLinear-style direct linear forecaster with closed-form ridge (see module docstring).

    ``lookback`` is L in steps, or a sequence of candidates chosen on the validation part;
    ``kernel`` the moving-average length of the trend split (0 or 1: no split); ``norm``
    the instance normalisation (``"last"`` value or window ``"mean"``); ``penalties`` the
    ridge grid (λ, relative to the number of windows), chosen per horizon step.
    Covariates are not used (use :class:`~gridpilot.forecast.gbm.GBMForecaster`).
    """

    name = "linear"
    uses_covariates = False

    def __init__(  # noqa: PLR0913
        self,
        horizon: int,
        lookback: int | Sequence[int] = 336,
        *,
        kernel: int = 25,
        norm: Literal["last", "mean"] = "last",
        penalties: Sequence[float] = DEFAULT_PENALTIES,
        per_step_penalty: bool = True,
        calibration_fraction: float = 0.2,
        repair: Repair = "error",
        refit: bool = True,
        chunk_elems: int = 2_000_000,
    ) -> None:
        super().__init__(
            horizon,
            lookback,
            calibration_fraction=calibration_fraction,
            repair=repair,
            refit=refit,
        )
        if norm not in ("last", "mean"):
            raise ValidationError(
                issues=[Issue(self.name, "norm", "must be 'last' or 'mean'", value=norm)]
            )
        pens = tuple(float(p) for p in penalties)
        if not pens or any(p <= 0 for p in pens):
            raise ValidationError(
                issues=[Issue(self.name, "penalties", "must be positive", value=penalties)]
            )
        self.kernel = int(kernel)
        self.norm = norm
        self.penalties = pens
        self.per_step_penalty = per_step_penalty
        self.chunk_elems = int(chunk_elems)
        self.penalty_: np.ndarray | None = None  # (H,) chosen λ per step
        self.weights_: np.ndarray | None = None  # (L, H) on instance-normalised input
        self.bias_: np.ndarray | None = None  # (H,)

    # --------------------------------------------------------------- windows
    def _windows(
        self, z: np.ndarray, origins: np.ndarray, lookback: int, with_target: bool
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Instance-normalised inputs (N·C, L), targets (N·C, H) and the subtracted level."""
        xi = origins[:, None] + np.arange(-lookback, 0)[None, :]
        x = values_at(z, xi).reshape(-1, lookback)
        lvl = x[:, -1:] if self.norm == "last" else x.mean(axis=1, keepdims=True)
        x = x - lvl
        y = None
        if with_target:
            y = target_windows(z, origins, self.horizon).reshape(-1, self.horizon) - lvl
        return x, y, lvl

    def _gram(self, z: np.ndarray, origins: np.ndarray, lookback: int) -> _Gram:
        g = _Gram(lookback, self.horizon)
        step = max(1, self.chunk_elems // (z.shape[1] * (lookback + self.horizon)))
        for i in range(0, len(origins), step):
            x, y, _ = self._windows(z, origins[i : i + step], lookback, True)
            assert y is not None
            g.add(x, y)
        return g

    def _transform(self, lookback: int) -> np.ndarray:
        """(d, L) feature map T: rows [M; I − M] with the DLinear split, else I."""
        eye = np.eye(lookback)
        if self.kernel <= 1:
            return eye
        m = moving_average_matrix(lookback, self.kernel)
        return np.vstack([m, eye - m])

    def _solve(self, g: _Gram, lookback: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centred Gram pieces and the penalty matrix P of the lookback space.

        Ridge on the split features f = T x with penalty λ·n·‖W_f‖² is, by the push-through
        identity, ridge on x with the penalty λ·n·Wᵀ P W where P = (TᵀT)⁻¹: the effective
        weights are W = (XᵀX + λ·n·P)⁻¹ XᵀY, an L×L solve per λ.
        """
        xm, ym = g.sx / g.n, g.sy / g.n
        axx = g.xx - g.n * np.outer(xm, xm)
        axy = g.xy - g.n * np.outer(xm, ym)
        t = self._transform(lookback)
        pen = np.eye(lookback) if self.kernel <= 1 else np.linalg.inv(t.T @ t)
        return axx, axy, (pen + pen.T) / 2

    def _weights(
        self, parts: tuple[np.ndarray, np.ndarray, np.ndarray], n: int, lam: float
    ) -> np.ndarray:
        """(L, H) weights on the instance-normalised lookback for penalty ``lam``."""
        axx, axy, pen = parts
        return np.linalg.solve(axx + lam * n * pen, axy)

    # ------------------------------------------------------------------ fit
    @property
    def val_mse_(self) -> dict[int, float]:
        """Validation MSE of each candidate lookback (with its best penalties)."""
        return self.val_scores_

    def _fit_all(self, fit: LookbackFit) -> None:
        assert self.penalty_ is not None
        g = self._gram(fit.z, fit.origins, fit.lookback)
        self._set_weights(g, self._solve(g, fit.lookback), self.penalty_)

    def _fit_candidate(self, fit: LookbackFit) -> tuple[float, Any]:
        """Ridge for every penalty; the validation MSE from validation Gram statistics."""
        lb, h = fit.lookback, self.horizon
        g = self._gram(fit.z, fit.origins, lb)
        gv = self._gram(fit.z, fit.val_origins, lb)
        parts = self._solve(g, lb)
        xm, ym = g.sx / g.n, g.sy / g.n
        errs = np.empty((len(self.penalties), h))
        for k, lam in enumerate(self.penalties):
            w = self._weights(parts, g.n, lam)
            bias = ym - xm @ w
            # Σ (x w + b − y)² per column from validation Gram statistics
            quad = np.einsum("ij,ij->j", w, gv.xx @ w)
            cross = np.einsum("ij,ij->j", w, gv.xy)
            errs[k] = (
                quad
                + 2 * bias * (gv.sx @ w)
                + gv.n * bias**2
                - 2 * cross
                - 2 * bias * gv.sy
                + gv.yy
            ) / gv.n
        if self.per_step_penalty:
            choice = errs.argmin(axis=0)
        else:
            choice = np.full(h, errs.mean(axis=1).argmin())
        lam_h = np.array(self.penalties)[choice]
        return float(errs[choice, np.arange(h)].mean()), (lam_h, g, parts)

    def _use(self, state: Any) -> None:
        lam_h, g, parts = state
        self.penalty_ = lam_h
        self._set_weights(g, parts, lam_h)

    def _set_weights(
        self,
        g: _Gram,
        parts: tuple[np.ndarray, np.ndarray, np.ndarray],
        lam_h: np.ndarray,
    ) -> None:
        assert self.lookback_ is not None
        w = np.empty((self.lookback_, self.horizon))
        for lam in np.unique(lam_h):
            cols = lam_h == lam
            w[:, cols] = self._weights(parts, g.n, float(lam))[:, cols]
        self.weights_ = w
        self.bias_ = g.sy / g.n - (g.sx / g.n) @ w

    # -------------------------------------------------------------- predict
    def _forecast(self, batch: ForecastBatch) -> np.ndarray:
        """Point forecasts (N, C, H) in data units."""
        self._check_trained(self.weights_, self.lookback_, self.bias_)
        assert self.weights_ is not None and self.lookback_ is not None
        z, origins = self.normalise(batch.values), batch.origins
        c = z.shape[1]
        out = np.empty((len(origins), c, self.horizon))
        step = max(1, self.chunk_elems // (c * (self.lookback_ + self.horizon)))
        for i in range(0, len(origins), step):
            o = origins[i : i + step]
            x, _, lvl = self._windows(z, o, self.lookback_, False)
            p = x @ self.weights_ + self.bias_ + lvl
            out[i : i + step] = p.reshape(len(o), c, self.horizon)
        return self.denormalise(out)
