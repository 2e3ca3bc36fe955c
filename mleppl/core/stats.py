"""Reference distributions and the confidence-level check (stdlib and JAX: no SciPy at run time)."""

from __future__ import annotations

import math
from statistics import NormalDist

import jax
import jax.numpy as jnp
import numpy as np

from .x64 import float64

__all__ = ["normal_quantile", "normal_sf", "chi2_sf", "check_level"]

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


def check_level(level: float) -> float:
    if isinstance(level, bool) or not (isinstance(level, (int, float)) and 0.0 < float(level) < 1.0):
        raise ValueError(f"level: expected a number strictly between 0 and 1, got {level!r}")
    return float(level)
