"""Hypothesis tests, information criteria and derived quantities of fitted results."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..core.records import FitRecord, InverseInformation, mask_cov
from ..core.stats import check_level, chi2_sf, normal_quantile
from ..core.warnings import ConvergenceWarning
from ..core.x64 import float64
from ..model import latent
from ..uncertainty.information import delta_cov

__all__ = ["TestResult", "DeltaResult", "lrt", "wald_test", "compare_fits", "delta"]


class TestResult(NamedTuple):
    """A χ² test: ``statistic``, degrees of freedom ``df`` and ``p_value``; ``reference`` names
    the null distribution (``"chi2(df)"``, or the χ̄² mixture for a variance component on
    its boundary)."""

    statistic: float
    df: int
    p_value: float
    reference: str = "chi2"

    __test__ = False  # not a pytest class


def _observed_data(rec) -> dict:
    return {o.name: o.value for o in rec.problem.sites.data}


def check_reml_comparable(fits, what: str) -> None:
    """Refuse, as glmmTMB does, what REML does not define: comparing restricted likelihoods of
    fits whose fixed effects differ (each is the likelihood of other residual contrasts), or a
    REML fit with a maximum-likelihood one."""
    kinds = {bool(r.reml) for r in fits}
    if kinds == {True, False}:
        raise ValueError(
            f"{what}: expected fits of one kind, got REML and maximum-likelihood fits (a REML "
            "log-likelihood is that of the residual contrasts, not of the data); fit both by ML "
            "(without reml=) to compare them"
        )
    if kinds != {True}:
        return
    first = fits[0]
    shapes = lambda r: [(n, np.shape(r.params[n])) for n in r.reml]  # noqa: E731
    at = {n: np.asarray(first.params[n]) for n in first.reml}
    designs = []
    for r in fits:
        same = shapes(r) == shapes(first)
        if same:
            with jax.enable_x64(True):
                designs.append(latent.fixed_design(r.problem, r.params, at))
            same = designs[-1].shape == designs[0].shape
        if not same or not _same_span(designs[0], designs[-1]):
            raise ValueError(
                f"{what}: expected REML fits with the same fixed effects, got fits whose fixed-effect "
                "sites or design differ: their restricted likelihoods are of different residual "
                "contrasts and are not comparable (glmmTMB and lme4 refuse this too); refit both by "
                "ML (without reml=) to compare fixed effects"
            )


def _same_span(a: np.ndarray, b: np.ndarray) -> bool:
    """Do the columns of ``a`` and ``b`` span the same space (to rounding)?"""

    def rank(m):
        s = np.linalg.svd(m, compute_uv=False)
        return int(np.sum(s > s[0] * 1e-9)) if s.size and s[0] > 0 else 0

    ra, rb, rab = rank(a), rank(b), rank(np.hstack([a, b]))
    return ra == rb == rab


def lrt(restricted, full) -> TestResult:
    r"""Likelihood-ratio test of a restricted model against a fuller one.

    Parameters
    ----------
    restricted, full : MLEResult
        Fits of two nested models to the same data; ``restricted`` has fewer
        free parameters.

    Returns
    -------
    TestResult
        ``statistic`` :math:`= 2(\log L_{full} - \log L_{restricted})`, ``df`` the
        difference in free parameters, ``p_value`` from :math:`\chi^2_{df}`.

    Raises
    ------
    ValueError
        The fits used different data (observed sites or values differ), the
        ``restricted`` model does not have fewer parameters, or it fits
        better than ``full`` beyond numerical tolerance (not nested, or a fit
        failed).

    Notes
    -----
    Wilks' theorem gives :math:`\chi^2_{df}` under the restriction when it lies
    in the interior of the parameter space. When the restricted model drops one
    random effect that the full model integrates out (``random=``), its variance is 0
    on the boundary and the reference is the mixture
    :math:`\tfrac12\chi^2_{df-1} + \tfrac12\chi^2_{df}` (``reference`` says so); for
    other boundary restrictions the plain :math:`\chi^2_{df}` p-value is conservative.

    Examples
    --------
    >>> import jax.numpy as jnp, numpy as np, numpyro, numpyro.distributions as dist
    >>> import mleppl
    >>> def model(x, y=None, slope=True):
    ...     a = numpyro.sample("a", dist.Normal(0, 10))
    ...     b = numpyro.sample("b", dist.Normal(0, 10)) if slope else 0.0
    ...     with numpyro.plate("n", x.shape[0]):
    ...         numpyro.sample("y", dist.Poisson(jnp.exp(a + b * x)), obs=y)
    >>> x = np.linspace(-1, 1, 8); y = np.array([0, 1, 1, 0, 2, 3, 1, 4.0])
    >>> t = mleppl.lrt(mleppl.fit_mle(model, x, y=y, slope=False), mleppl.fit_mle(model, x, y=y))
    >>> t.df, round(t.statistic, 4), round(t.p_value, 4)
    (1, 5.3945, 0.0202)
    """
    for label, r in (("restricted", restricted), ("full", full)):
        if not isinstance(r, FitRecord) or r.problem is None:
            raise TypeError(f"{label}: expected an MLEResult from mleppl.fit_mle, got {type(r).__name__}")
        if not r.converged:
            warnings.warn(f"lrt: the {label} fit did not converge", ConvergenceWarning, stacklevel=2)
    d_r, d_f = _observed_data(restricted), _observed_data(full)
    if sorted(d_r) != sorted(d_f):
        raise ValueError(
            f"lrt: expected both fits to have the same observed sites, got {sorted(d_r)} and {sorted(d_f)}"
        )
    for name in d_r:
        a, b = d_r[name], d_f[name]
        if a.shape != b.shape or not np.array_equal(a, b, equal_nan=True):
            raise ValueError(
                f"lrt: expected both fits to use the same data, got different values at '{name}'"
            )
    if restricted.nobs != full.nobs:
        raise ValueError(
            f"lrt: expected the same number of observations, got {restricted.nobs} and {full.nobs}"
        )
    check_reml_comparable([restricted, full], "lrt")
    df = full.n_params - restricted.n_params
    if df <= 0:
        raise ValueError(
            "lrt: expected the restricted model to have fewer free parameters than the full one, got "
            f"{restricted.n_params} (restricted) and {full.n_params} (full); are the arguments swapped?"
        )
    stat = 2.0 * (full.loglik - restricted.loglik)
    tol = 1e-6 * (1.0 + abs(full.loglik))
    if stat < -tol:
        raise ValueError(
            f"lrt: the restricted model fits better than the full one (log-likelihoods {restricted.loglik:.6g} "
            f"> {full.loglik:.6g}): expected nested models and converged fits"
        )
    stat = max(stat, 0.0)
    dropped = _dropped_random_effects(restricted, full)
    if len(dropped) == 1:
        # one variance component set to 0 lies on the boundary of its space: the null
        # distribution is the 50:50 mixture of χ²(df−1) and χ²(df) (Self & Liang 1987)
        p = 0.5 * (chi2_sf(stat, df - 1) if df > 1 else float(stat <= 0)) + 0.5 * chi2_sf(stat, df)
        return TestResult(float(stat), int(df), float(p), f"0.5 chi2({df - 1}) + 0.5 chi2({df})")
    return TestResult(float(stat), int(df), chi2_sf(stat, df), f"chi2({df})")


def _dropped_random_effects(restricted, full) -> list[str]:
    """Random-effect sites integrated out in the full fit and absent from the restricted one."""
    rf = full.problem.random
    if rf is None:
        return []
    rr = restricted.problem.random
    kept = set() if rr is None else set(rr.layout.names)
    return [n for n in rf.layout.names if n not in kept]


def _restriction_matrix(res, R, q):
    names = list(res.param_names)
    k = len(names)
    if isinstance(R, str):
        R = [R]
    if isinstance(R, Sequence) and R and all(isinstance(r, str) for r in R):
        rows = np.zeros((len(R), k))
        for i, name in enumerate(R):
            if name not in names:
                raise ValueError(f"R: unknown parameter {name!r}; expected one of {names}")
            rows[i, names.index(name)] = 1.0
        R = rows
    R = np.atleast_2d(np.asarray(R, dtype=np.float64))
    if R.ndim != 2 or R.shape[1] != k:
        raise ValueError(f"R: expected a matrix with {k} columns (one per parameter), got shape {R.shape}")
    q = np.zeros(R.shape[0]) if q is None else np.atleast_1d(np.asarray(q, dtype=np.float64))
    if q.shape != (R.shape[0],):
        raise ValueError(f"q: expected {R.shape[0]} values (one per row of R), got shape {q.shape}")
    return R, q


def wald_test(res, R, q=None) -> TestResult:
    r"""Wald test of the linear hypothesis :math:`R\theta = q`.

    Parameters
    ----------
    res : MLEResult
        A fitted result; its current covariance (``res.cov_type``) is used.
    R : array-like (r, k), or parameter name(s)
        Restriction matrix over ``res.param_names``; a name or list of names
        tests that those parameters are jointly zero.
    q : array-like (r,), optional
        Right-hand side (zeros by default).

    Returns
    -------
    TestResult

    Notes
    -----
    :math:`W = (R\hat\theta - q)^\top (R\,\Sigma\,R^\top)^{-1} (R\hat\theta - q)
    \sim \chi^2_r` under the hypothesis (statsmodels'
    ``wald_test(..., use_f=False)``).

    Examples
    --------
    >>> import jax.numpy as jnp, numpy as np, numpyro, numpyro.distributions as dist
    >>> import mleppl
    >>> def model(x, y=None):
    ...     b = numpyro.sample("b", dist.Normal(0, 10).expand([2]).to_event(1))
    ...     with numpyro.plate("n", x.shape[0]):
    ...         numpyro.sample("y", dist.Poisson(jnp.exp(b[0] + b[1] * x)), obs=y)
    >>> x = np.linspace(-1, 1, 8); y = np.array([0, 1, 1, 0, 2, 3, 1, 4.0])
    >>> t = mleppl.wald_test(mleppl.fit_mle(model, x, y=y), "b[1]")
    >>> t.df, round(t.statistic, 4)
    (1, 4.6544)
    """
    R, q = _restriction_matrix(res, R, q)
    diff = R @ res.estimate - q
    v = R @ np.asarray(res.cov) @ R.T
    if not np.all(np.isfinite(v)):
        return TestResult(math.nan, R.shape[0], math.nan)
    stat = float(diff @ np.linalg.solve(v, diff))
    return TestResult(stat, int(R.shape[0]), chi2_sf(stat, R.shape[0]))


def compare_fits(fits) -> pd.DataFrame:
    r"""Information criteria of several fits of the same data, best AIC first.

    Parameters
    ----------
    fits : dict of name -> MLEResult, or sequence of MLEResult

    Returns
    -------
    pandas.DataFrame
        Columns ``loglik, n_params, nobs, aic, aicc, bic, d_aic, weight``:
        ``d_aic`` is the difference to the smallest AIC and ``weight`` the
        Akaike weight :math:`w_m \propto \exp(-\Delta_m/2)`.

    Raises
    ------
    ValueError
        Fits with different numbers of observations (criteria not comparable).

    Examples
    --------
    >>> import numpy as np, numpyro, numpyro.distributions as dist
    >>> import mleppl
    >>> def model(y=None):
    ...     mu = numpyro.sample("mu", dist.Normal(0, 10))
    ...     with numpyro.plate("n", y.shape[0]):
    ...         numpyro.sample("y", dist.Normal(mu, 1), obs=y)
    >>> t = mleppl.compare_fits({"normal": mleppl.fit_mle(model, y=np.array([0.5, 1.5]))})
    >>> list(t.columns)
    ['loglik', 'n_params', 'nobs', 'aic', 'aicc', 'bic', 'd_aic', 'weight']
    """
    if isinstance(fits, Mapping):
        items = list(fits.items())
    else:
        items = [(f"model{i}", r) for i, r in enumerate(fits)]
    if not items:
        raise ValueError("fits: expected at least one fitted result, got none")
    nobs = {r.nobs for _, r in items}
    if len(nobs) > 1:
        raise ValueError(f"fits: expected fits of the same data (one nobs), got nobs {sorted(nobs)}")
    check_reml_comparable([r for _, r in items], "compare_fits")
    df = pd.DataFrame(
        {
            "loglik": [r.loglik for _, r in items],
            "n_params": [r.n_params for _, r in items],
            "nobs": [r.nobs for _, r in items],
            "aic": [r.aic for _, r in items],
            "aicc": [r.aicc for _, r in items],
            "bic": [r.bic for _, r in items],
        },
        index=pd.Index([k for k, _ in items], name="model"),
    )
    df["d_aic"] = df["aic"] - df["aic"].min()
    w = np.exp(-0.5 * df["d_aic"].to_numpy())
    df["weight"] = w / w.sum()
    return df.sort_values("aic")


class DeltaResult(NamedTuple):
    """A derived quantity: ``estimate``, delta-method ``se`` and ``cov`` (flattened)."""

    estimate: np.ndarray
    se: np.ndarray
    cov: np.ndarray

    def conf_int(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Wald interval ``estimate ± z·se``."""
        q = normal_quantile(0.5 + check_level(level) / 2.0)
        return self.estimate - q * self.se, self.estimate + q * self.se


@float64
def delta(res, fn: Callable) -> DeltaResult:
    r"""Estimate and delta-method standard error of a function of the parameters.

    Parameters
    ----------
    res : MLEResult
        A fitted result; its current covariance (``res.cov_type``) is used.
    fn : callable
        ``fn(params) -> array``: a JAX-traceable function of the dict of
        constrained site values (e.g. ``lambda p: jnp.exp(p["beta"][1])``).

    Returns
    -------
    DeltaResult
        ``estimate`` and ``se`` with the shape of ``fn``'s output; ``cov`` over
        its flattened elements.

    Notes
    -----
    With :math:`g(z) = fn(\theta(z))` and :math:`J_g = \partial g/\partial z` at
    :math:`\hat z` (by automatic differentiation),
    :math:`\operatorname{Cov}(g) \approx J_g \Sigma_z J_g^\top`.

    Examples
    --------
    >>> import jax.numpy as jnp, numpy as np, numpyro, numpyro.distributions as dist
    >>> import mleppl
    >>> def model(y=None):
    ...     rate = numpyro.sample("rate", dist.Exponential(1.0))
    ...     with numpyro.plate("n", y.shape[0]):
    ...         numpyro.sample("y", dist.Exponential(rate), obs=y)
    >>> res = mleppl.fit_mle(model, y=np.array([0.5, 1.0, 1.5, 2.0]))
    >>> d = mleppl.delta(res, lambda p: 1.0 / p["rate"])   # the mean, ȳ = 1.25
    >>> round(float(d.estimate), 6), round(float(d.se), 6)   # se = ȳ/√n
    (1.25, 0.625)
    """
    if not callable(fn):
        raise TypeError(f"fn: expected a callable of the parameter dict, got {type(fn).__name__}")
    layout = res.problem.layout

    def g(z):
        return jnp.ravel(jnp.asarray(fn(layout.constrain(z)), dtype=jnp.float64))

    z = jnp.asarray(res.z)
    shape = jnp.shape(fn(layout.constrain(z)))
    est = np.asarray(g(z))
    jac = np.asarray(jax.jacfwd(g)(z))
    cov = delta_cov(jac, InverseInformation.from_cov(res.cov_z))
    # a function that is not finite at the estimate has no delta-method standard error
    bad = ~np.isfinite(est) | ~np.all(np.isfinite(jac), axis=1)
    cov = mask_cov(cov, bad)
    return DeltaResult(est.reshape(shape), np.sqrt(np.diag(cov)).reshape(shape), cov)
