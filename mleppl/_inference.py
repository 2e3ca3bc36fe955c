"""Tables and intervals from a fitted result (Wald; more methods build on these)."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd

__all__ = ["summary_table", "conf_int", "check_level", "normal_sf", "normal_quantile"]

_N = NormalDist()


def normal_quantile(q: float) -> float:
    """Standard normal quantile (stdlib: no SciPy at run time)."""
    return _N.inv_cdf(q)


def normal_sf(z) -> np.ndarray:
    """Standard normal upper tail, elementwise; NaN stays NaN."""
    z = np.asarray(z, dtype=np.float64)
    out = np.full(z.shape, np.nan)
    ok = ~np.isnan(z)
    if ok.any():
        out[ok] = 0.5 * np.vectorize(math.erfc, otypes=[float])(z[ok] / math.sqrt(2.0))
    return out


def check_level(level: float) -> float:
    if not (isinstance(level, (int, float)) and 0.0 < float(level) < 1.0):
        raise ValueError(f"level: expected a number strictly between 0 and 1, got {level!r}")
    return float(level)


def _wald(est: np.ndarray, se: np.ndarray, level: float):
    q = normal_quantile(0.5 + level / 2.0)
    return est - q * se, est + q * se


def summary_table(res, *, level: float = 0.95, include_deterministic: bool = False) -> pd.DataFrame:
    level = check_level(level)
    est = res.estimate
    se = res.bse
    names = list(res.param_names)
    if include_deterministic:
        from ._likelihood import param_labels

        for name, val in res.deterministic.items():
            names += param_labels(name, np.shape(val))
            est = np.concatenate([est, np.ravel(val)])
            se = np.concatenate([se, np.ravel(res.deterministic_se[name])])
    with np.errstate(divide="ignore", invalid="ignore"):
        z = est / se
    p = 2.0 * normal_sf(np.abs(z))
    lo, hi = _wald(est, se, level)
    return pd.DataFrame(
        {"estimate": est, "se": se, "z": z, "p_value": p, "ci_lower": lo, "ci_upper": hi},
        index=pd.Index(names, name="parameter"),
    )


def conf_int(res, *, level: float = 0.95, method: str = "wald", **options) -> pd.DataFrame:
    level = check_level(level)
    if method != "wald":
        raise ValueError(f"method: expected one of 'wald', got {method!r}")
    if options:
        raise TypeError(f"conf_int(method='wald'): unexpected options {sorted(options)}")
    lo, hi = _wald(res.estimate, res.bse, level)
    return pd.DataFrame({"lower": lo, "upper": hi}, index=pd.Index(list(res.param_names), name="parameter"))
