"""Reference distributions and the confidence-level check (stdlib and JAX: no SciPy at run time)."""

from __future__ import annotations

import math
from statistics import NormalDist

import jax
import jax.numpy as jnp
import numpy as np

from .x64 import float64

__all__ = ["normal_quantile", "normal_sf", "chi2_sf", "t_sf", "t_quantile", "check_level"]

_N = NormalDist()


def normal_quantile(q: float) -> float:
    """Standard normal quantile."""
    return _N.inv_cdf(q)


def normal_sf(z) -> np.ndarray:
    """Standard normal upper tail, elementwise; NaN stays NaN."""
    z = np.asarray(z, dtype=np.float64)
    out = np.full(z.shape, np.nan)
    ok = ~np.isnan(z)
    if ok.any():
        out[ok] = 0.5 * np.vectorize(math.erfc, otypes=[float])(z[ok] / math.sqrt(2.0))
    return out


@float64
def chi2_sf(x, df) -> float:
    r"""Upper tail of the :math:`\chi^2_{df}` distribution, :math:`Q(df/2, x/2)` (float64)."""
    return float(jax.scipy.special.gammaincc(df / 2.0, jnp.maximum(jnp.asarray(x, jnp.float64), 0) / 2.0))


@float64
def t_sf(t, df) -> np.ndarray:
    r"""Upper tail of Student's t, elementwise: :math:`\tfrac12 I_{\nu/(\nu+t^2)}(\nu/2, 1/2)`
    for t ≥ 0 (float64; NaN stays NaN, ``df = inf`` is the normal)."""
    t = np.asarray(t, dtype=np.float64)
    nu = np.broadcast_to(np.asarray(df, dtype=np.float64), t.shape)
    x = nu / (nu + t**2)
    half = 0.5 * np.asarray(jax.scipy.special.betainc(nu / 2.0, 0.5, jnp.asarray(x)))
    out = np.where(t >= 0, half, 1.0 - half)
    out = np.where(np.isinf(nu), normal_sf(t), out)
    return np.where(np.isnan(t) | np.isnan(nu), np.nan, out)


def t_quantile(q: float, df) -> np.ndarray:
    """Quantile of Student's t (q > 1/2), elementwise in ``df``, by bisection on :func:`t_sf`."""
    nu = np.atleast_1d(np.asarray(df, dtype=np.float64))
    lo, hi = np.zeros_like(nu), np.full_like(nu, normal_quantile(q))
    while np.any(t_sf(hi, nu) > 1.0 - q):  # the t quantile lies above the normal one
        hi = np.where(t_sf(hi, nu) > 1.0 - q, 2.0 * hi, hi)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        up = t_sf(mid, nu) > 1.0 - q
        lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
        if np.all(hi - lo <= 1e-13 * np.maximum(1.0, hi)):
            break
    out = 0.5 * (lo + hi)
    return np.where(np.isnan(nu), np.nan, out).reshape(np.shape(df))


def check_level(level: float) -> float:
    if isinstance(level, bool) or not (isinstance(level, (int, float)) and 0.0 < float(level) < 1.0):
        raise ValueError(f"level: expected a number strictly between 0 and 1, got {level!r}")
    return float(level)
