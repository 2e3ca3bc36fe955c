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


CONF_INT_METHODS = ("wald", "profile", "bootstrap")


def _wald_unconstrained(res, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Wald on the optimizer's scale, endpoints mapped through each site's bijection."""
    import jax
    import jax.numpy as jnp

    from ._profile import elementwise_coords

    q = normal_quantile(0.5 + level / 2.0)
    z = np.asarray(res.z, dtype=np.float64)
    se_z = np.sqrt(np.diag(np.asarray(res.cov_z)))
    layout = res.fit.problem.layout
    with jax.enable_x64(True):
        a = np.asarray(layout.flatten(layout.constrain(jnp.asarray(z - q * se_z))), dtype=np.float64)
        b = np.asarray(layout.flatten(layout.constrain(jnp.asarray(z + q * se_z))), dtype=np.float64)
    lo, hi = np.fmin(a, b), np.fmax(a, b)
    lo = np.where(np.isnan(a) | np.isnan(b), np.nan, lo)
    hi = np.where(np.isnan(a) | np.isnan(b), np.nan, hi)
    # Sites whose bijection mixes coordinates (simplex, Cholesky): constrained-scale Wald.
    elem = elementwise_coords(res) >= 0
    lo_c, hi_c = _wald(res.estimate, res.bse, level)
    return np.where(elem, lo, lo_c), np.where(elem, hi, hi_c)


def conf_int(res, *, level: float = 0.95, method: str = "wald", **options) -> pd.DataFrame:
    r"""Confidence intervals for every parameter of a fitted result.

    Parameters
    ----------
    res : MLEResult
        A fitted result.
    level : float
        Confidence level in (0, 1).
    method : {"wald", "profile", "bootstrap"}
        ``"wald"``: :math:`\hat\theta \pm z\,\mathrm{se}` from the current
        covariance (``res.cov_type``). ``"profile"``: profile likelihood
        (:func:`mleppl._profile.profile_conf_int`). ``"bootstrap"``: from
        :func:`mleppl.bootstrap` draws.
    **options
        ``method="wald"``: ``scale="constrained"`` (default, as statsmodels) or
        ``"unconstrained"`` (the interval :math:`\hat z \pm z\,\mathrm{se}_z`
        on the optimizer's scale mapped back through each site's bijection, so
        it stays inside the support; sites whose bijection is not elementwise
        keep the constrained-scale interval).
        ``method="bootstrap"``: ``boot=`` an existing :class:`BootstrapResult`,
        or ``n_boot=`` (default 1000), ``kind=``, ``rng_key=`` to draw one;
        ``interval="percentile"`` (default) or ``"bca"``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``param_names``, columns ``lower``, ``upper``.

    Examples
    --------
    >>> import numpy as np, numpyro, numpyro.distributions as dist
    >>> from mleppl import fit_mle
    >>> def model(y=None):
    ...     rate = numpyro.sample("rate", dist.Exponential(1.0))
    ...     with numpyro.plate("n", y.shape[0]):
    ...         numpyro.sample("y", dist.Exponential(rate), obs=y)
    >>> res = fit_mle(model, y=np.array([0.1, 0.2, 3.0]))
    >>> bool(res.conf_int().loc["rate", "lower"] < 0)   # constrained-scale Wald leaves the support
    True
    >>> bool(res.conf_int(scale="unconstrained").loc["rate", "lower"] > 0)
    True
    """
    level = check_level(level)
    if method not in CONF_INT_METHODS:
        raise ValueError(f"method: expected one of {CONF_INT_METHODS}, got {method!r}")
    index = pd.Index(list(res.param_names), name="parameter")
    if method == "profile":
        if options:
            raise TypeError(f"conf_int(method='profile'): unexpected options {sorted(options)}")
        from ._profile import profile_conf_int

        return profile_conf_int(res, level=level)
    if method == "bootstrap":
        from ._bootstrap import bootstrap_conf_int

        return bootstrap_conf_int(res, level=level, **options)
    scale = options.pop("scale", "constrained")
    if options:
        raise TypeError(f"conf_int(method='wald'): unexpected options {sorted(options)}")
    if scale == "constrained":
        lo, hi = _wald(res.estimate, res.bse, level)
    elif scale == "unconstrained":
        lo, hi = _wald_unconstrained(res, level)
    else:
        raise ValueError(f"scale: expected 'constrained' or 'unconstrained', got {scale!r}")
    return pd.DataFrame({"lower": lo, "upper": hi}, index=index)
