"""A Bayesian (NUTS) fit of the same model, and its side-by-side comparison with the MLE.

``fit_nuts`` runs NumPyro's NUTS on the model *with* its priors and returns an
ArviZ DataTree; ``compare`` lays an :class:`~mleppl.MLEResult` and such a tree
side by side, one row per scalar parameter; ``plot_compare`` draws both as one
forest plot. ArviZ itself is touched only from :mod:`mleppl.reporting.arviz`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import pandas as pd

from .adapters import numpyro as npa
from .core.sites import param_labels
from .core.stats import check_level, normal_quantile
from .core.x64 import float64
from .model.inputs import as_rng_key
from .reporting.arviz import nuts_to_datatree, plot_forest_models, posterior_diagnostics
from .result import MLEResult

__all__ = [
    "fit_nuts",
    "compare",
    "plot_compare",
    "CHAIN_METHODS",
    "STD_DIFF_TOL",
    "SD_RATIO_TOL",
    "PRIOR_WEIGHT_TOL",
    "PRIOR_CONFLICT_TOL",
    "SKEW_TOL",
    "RHAT_TOL",
    "MIN_OBS_PER_PARAM",
]

CHAIN_METHODS = ("auto", "sequential", "parallel", "vectorized")
_EXTRA_FIELDS = (
    "potential_energy",
    "energy",
    "num_steps",
    "accept_prob",
    "adapt_state.step_size",
    "diverging",
)

# Thresholds of ``compare`` (stated in its docstring; the reasons are in its Notes).
STD_DIFF_TOL = 0.25  # |post_mean − MLE| / SE
SD_RATIO_TOL = 1.25  # post_sd / SE outside [1/1.25, 1.25]
PRIOR_WEIGHT_TOL = 0.10  # share of the likelihood's variance the prior removes
PRIOR_CONFLICT_TOL = 2.0  # |prior median − MLE| / √(se² + s_prior²)
SKEW_TOL = 0.10  # |post_mean − post_median| / post_sd
RHAT_TOL = 1.01
MIN_OBS_PER_PARAM = 10


# --------------------------------------------------------------------------- NUTS
def _positive_int(name: str, value, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an integer ≥ {minimum}, got {value!r}")
    return int(value)


def _resolve_chain_method(chain_method: str, num_chains: int) -> str:
    if chain_method not in CHAIN_METHODS:
        raise ValueError(f"chain_method: expected one of {CHAIN_METHODS}, got {chain_method!r}")
    if chain_method != "auto":
        return chain_method
    # Parallel chains need one XLA device each; on CPU the device count is fixed
    # when JAX starts (XLA_FLAGS / numpyro.set_host_device_count), so fall back to
    # sequential chains, which always run.
    return "parallel" if num_chains > 1 and jax.local_device_count() >= num_chains else "sequential"


def _check_sample_sites(model: Callable, args: tuple, kwargs: dict, rng_key) -> list[str]:
    """Names of the latent sample sites; reject ``numpyro.param`` sites (NUTS holds them fixed)."""
    kinds = npa.site_kinds(npa.trace_model(model, args, kwargs, rng_key))
    params = [name for name, kind in kinds if kind == "param"]
    if params:
        raise ValueError(
            f"site(s) {params} are numpyro.param sites: NUTS would hold them fixed at their initial "
            "value; expected numpyro.sample sites with priors for a Bayesian fit"
        )
    latent = [name for name, kind in kinds if kind == "latent"]
    if not latent:
        raise ValueError(
            "model has no latent numpyro.sample site: expected at least one parameter with a prior, got none"
        )
    return latent


@float64
def fit_nuts(
    model: Callable,
    *args,
    num_warmup: int = 500,
    num_samples: int = 1000,
    num_chains: int = 2,
    rng_key=None,
    chain_method: str = "auto",
    progress_bar: bool = True,
    target_accept_prob: float = 0.8,
    dense_mass: bool = False,
    num_prior_draws: int = 1000,
    **model_kwargs,
):
    """Bayesian fit of the same model, priors included, with NumPyro's NUTS.

    Parameters
    ----------
    model : callable
        A NumPyro model whose parameters are ``numpyro.sample`` sites with priors.
    *args, **model_kwargs
        Passed to the model, exactly as to :func:`mleppl.fit_mle` (e.g. ``X, y=y``).
        The option names below are therefore reserved.
    num_warmup, num_samples : int
        Warm-up (adaptation) iterations and kept draws per chain.
    num_chains : int
        Number of chains (≥ 2 gives a meaningful ``r_hat``).
    rng_key : jax.random.PRNGKey or int, optional
        Randomness for the chains and the prior draws (default key 0: reproducible).
    chain_method : {"auto", "sequential", "parallel", "vectorized"}
        How chains run. ``"auto"`` runs them in parallel when JAX sees at least
        ``num_chains`` devices, else one after the other. On CPU, parallel chains
        need ``numpyro.set_host_device_count(k)`` *before* JAX starts.
    progress_bar : bool
        Show NumPyro's progress display.
    target_accept_prob : float
        NUTS step-size adaptation target.
    dense_mass : bool
        Adapt a dense mass matrix (helps strongly correlated posteriors).
    num_prior_draws : int
        Draws from the prior of the latent sites, stored in the ``prior`` group
        (``compare`` uses them to measure how much the prior pulls); 0 skips them.

    Returns
    -------
    xarray.DataTree
        Groups ``posterior``, ``sample_stats`` (``lp``, ``diverging``, ...),
        ``log_likelihood`` (pointwise, so ``arviz_stats.loo`` works),
        ``observed_data`` and, unless ``num_prior_draws=0``, ``prior``. Sample
        dimensions are ``(chain, draw)``; values are float64.

    Raises
    ------
    ValueError
        An option out of range, a model with ``numpyro.param`` sites (NUTS would
        hold them fixed) or without any latent ``numpyro.sample`` site.

    Notes
    -----
    NUTS draws from the posterior

    .. math:: p(\\theta \\mid y) \\propto p(y \\mid \\theta)\\, p(\\theta),

    sampling the unconstrained :math:`z` with density
    :math:`p(y \\mid \\theta(z))\\,p(\\theta(z))\\,|\\det J_\\theta(z)|`, so the
    draws of :math:`\\theta` are draws of the posterior above on the natural
    scale. The whole run is in float64.

    Examples
    --------
    >>> import numpy as np, numpyro, numpyro.distributions as dist
    >>> import mleppl
    >>> def model(y=None):
    ...     mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
    ...     with numpyro.plate("obs", 3):
    ...         numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)
    >>> dt = mleppl.fit_nuts(model, y=np.array([1.0, 2.0, 3.0]), num_warmup=50,
    ...                      num_samples=50, num_chains=1, progress_bar=False)
    >>> dict(dt["posterior"].sizes), list(dt["log_likelihood"].data_vars)
    ({'chain': 1, 'draw': 50}, ['y'])
    """
    num_warmup = _positive_int("num_warmup", num_warmup, minimum=0)
    num_samples = _positive_int("num_samples", num_samples, minimum=1)
    num_chains = _positive_int("num_chains", num_chains, minimum=1)
    num_prior_draws = _positive_int("num_prior_draws", num_prior_draws, minimum=0)
    if not (isinstance(target_accept_prob, (int, float)) and 0.0 < target_accept_prob < 1.0):
        raise ValueError(f"target_accept_prob: expected a number in (0, 1), got {target_accept_prob!r}")
    method = _resolve_chain_method(chain_method, num_chains)
    key_mcmc, key_prior, key_trace = jax.random.split(as_rng_key(rng_key), 3)
    latent = _check_sample_sites(model, args, model_kwargs, key_trace)
    mcmc = npa.run_nuts(
        model,
        key_mcmc,
        args,
        model_kwargs,
        target_accept_prob=float(target_accept_prob),
        dense_mass=bool(dense_mass),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method=method,
        progress_bar=progress_bar,
        extra_fields=_EXTRA_FIELDS,
    )
    prior = None
    if num_prior_draws:
        names = [n for n in mcmc.get_samples() if n in latent] or latent
        draws = npa.prior_draws(model, key_prior, args, model_kwargs, names, num_prior_draws)
        prior = {k: np.asarray(v)[None] for k, v in draws.items()}
    return nuts_to_datatree(mcmc, prior=prior)


def _flatten(ds, *, sample_dims=("chain", "draw"), coords=None) -> dict[str, np.ndarray]:
    """label → draws (chain·draw,) for every scalar element of every variable of ``ds``
    (``coords``: the fit's names for vector entries, ``beta[age]``)."""
    out = {}
    for name, da in ds.data_vars.items():
        other = [d for d in da.dims if d not in sample_dims]
        v = np.asarray(da.transpose(*sample_dims, *other).values, dtype=np.float64)
        shape = v.shape[len(sample_dims) :]
        v = v.reshape((-1,) + shape)
        for i, label in enumerate(param_labels(str(name), tuple(shape), coords)):
            out[label] = v.reshape(v.shape[0], -1)[:, i]
    return out


def _flatten_stat(ds, coords=None) -> dict[str, float]:
    """label → value for a dataset of per-element statistics (no sample dims)."""
    out = {}
    for name, da in ds.data_vars.items():
        v = np.asarray(da.values, dtype=np.float64)
        for label, x in zip(param_labels(str(name), v.shape, coords), v.ravel()):
            out[label] = float(x)
    return out


def _mle_side(res: MLEResult) -> dict[str, tuple[float, float]]:
    """label → (estimate, se) for the parameters, then the deterministic sites."""
    out = {n: (float(e), float(s)) for n, e, s in zip(res.param_names, res.estimate, res.bse)}
    for name, val in res.deterministic.items():
        se = np.ravel(res.deterministic_se[name])
        for label, e, s in zip(param_labels(name, np.shape(val)), np.ravel(val), se):
            out.setdefault(label, (float(e), float(s)))
    # random effects integrated out: conditional mode and conditional SD (empirical Bayes)
    for name, mode in res.random_modes.items():
        sd = np.ravel(res.random_sd[name])
        for label, e, s in zip(param_labels(name, np.shape(mode)), np.ravel(mode), sd):
            out.setdefault(label, (float(e), float(s)))
    return out


def _support_bounds(res: MLEResult) -> dict[str, tuple[float, float]]:
    """label → (lower, upper) bound of the support, for sites with elementwise bounds."""
    if res.problem is None:
        return {}
    out = {}
    coords = dict(res.problem.layout.coords)
    for site in res.problem.sites.free:
        lo, hi = npa.support_bounds(site.support, site.shape)
        for label, a, b in zip(param_labels(site.name, site.shape, coords), lo, hi):
            out[label] = (float(a), float(b))
    return out


def _robust_scale(draws: np.ndarray) -> float:
    """Half the central 68 % range: the sd for a normal, finite for heavy-tailed priors."""
    q16, q84 = np.nanquantile(draws, [0.158655, 0.841345])
    return float(0.5 * (q84 - q16))


def _prior_effect(res: MLEResult, prior: dict[str, np.ndarray]) -> dict[str, tuple[float, float, float]]:
    """Normal-approximation effect of the prior on each parameter of ``res``.

    Returns label → ``(weight, shift, conflict)``: the share of the likelihood
    variance the prior removes, ``1 − Σ_post,ii / Σ_ii``; the predicted shift of
    the posterior mean in standard errors, ``[Σ_post P (m − θ̂)]_i / se_i``, with
    ``Σ_post = (Σ⁻¹ + P)⁻¹`` and ``P`` diagonal with the prior precisions (0
    where no prior draws exist); and the prior–data conflict
    ``|m_i − θ̂_i| / √(se_i² + s_i²)``. NaN where not computable.
    """
    names = list(res.param_names)
    scale = np.array([_robust_scale(prior[n]) if n in prior else np.inf for n in names])
    center = np.array([float(np.nanmedian(prior[n])) if n in prior else np.nan for n in names])
    cov = np.asarray(res.cov, dtype=np.float64)
    se = np.sqrt(np.diag(cov))
    with np.errstate(divide="ignore", invalid="ignore"):
        conflict = np.abs(center - res.estimate) / np.sqrt(se**2 + scale**2)
    weight = shift = np.full(len(names), np.nan)
    if names and np.all(np.isfinite(cov)) and np.all(scale > 0):
        try:
            prec = np.where(np.isfinite(scale), 1.0 / scale**2, 0.0)
            cov_post = np.linalg.inv(np.linalg.inv(cov) + np.diag(prec))
            weight = 1.0 - np.diag(cov_post) / np.diag(cov)
            shift = cov_post @ (prec * np.nan_to_num(center - res.estimate)) / se
        except np.linalg.LinAlgError:
            pass
    return {n: (float(w), float(d), float(c)) for n, w, d, c in zip(names, weight, shift, conflict)}


def _reasons(row: dict, *, res: MLEResult, bounds, has_prior: bool, conflicts: list[str]) -> str:
    """The likely cause(s) of a flagged disagreement, in words."""
    if math.isnan(row["post_mean"]):
        return "only in the MLE fit (no posterior draws for this parameter)"
    if math.isnan(row["mle"]):
        return "only in the Bayesian fit (not a parameter or deterministic site of the MLE result)"
    out = []
    nobs, n_params = res.nobs, res.n_params
    if not res.converged:
        out.append(f"the MLE did not converge ({res.message})")
    if row["r_hat"] > RHAT_TOL:
        out.append(f"NUTS not converged (r_hat {row['r_hat']:.3f} > {RHAT_TOL}): run longer chains")
    lo, hi = bounds
    z = row["_z"]
    se = row["se"]
    est = row["mle"]
    at_edge = min(abs(est - lo), abs(hi - est)) <= 1e-6 * (1.0 + abs(est))
    if at_edge or (math.isfinite(se) and (est - z * se < lo or est + z * se > hi)):
        out.append(
            "boundary: the MLE's interval crosses the edge of the support, where the likelihood is "
            "not normal and the posterior mass is pushed inward"
        )
    if conflicts:
        out.append(
            f"prior–data conflict on {', '.join(conflicts)}: the prior's centre lies more than "
            f"{PRIOR_CONFLICT_TOL:g} combined sd from the MLE, so the posterior compromises and "
            "correlated or scale parameters absorb the gap"
        )
    if not (math.isfinite(se) and se > 0):
        out.append(
            f"no usable standard error (se = {se:g}): the observed information is singular or "
            "infinite here (boundary, non-identified parameter or failed fit)"
        )
    w = row["prior_weight"]
    if has_prior and w >= PRIOR_WEIGHT_TOL:
        out.append(
            f"prior pulling: the prior removes about {w:.0%} of the likelihood's variance and "
            f"moves the mean by about {row['prior_shift']:+.2f} se"
        )
    elif not w >= PRIOR_WEIGHT_TOL and row["sd_ratio"] < 1.0 / SD_RATIO_TOL:
        out.append("prior pulling (likely): the posterior is narrower than the likelihood alone allows")
    if row["sd_ratio"] > SD_RATIO_TOL and not conflicts:
        out.append(
            "weak identification: the likelihood is flatter away from the MLE than its curvature "
            "there suggests (posterior wider than the SE)"
        )
    skew = abs(row["post_mean"] - row["post_median"]) / row["post_sd"] if row["post_sd"] > 0 else 0.0
    if nobs < MIN_OBS_PER_PARAM * max(n_params, 1) or skew > SKEW_TOL:
        out.append(
            f"small sample: {nobs} observations for {n_params} parameters; the likelihood is not yet "
            f"quadratic (posterior skewness |mean − median|/sd = {skew:.2f})"
        )
    if not out and lo > -math.inf and n_params > 1:
        out.append(
            f"marginalization (likely): the posterior averages over the other {n_params - 1} "
            "parameters where the MLE maximizes over them, which moves a bounded (scale or shape) "
            "parameter, as RSS/(n − p) differs from RSS/n"
        )
    return "; ".join(out) or "differs beyond the thresholds without a recognized cause"


def compare(res: MLEResult, datatree, *, level: float = 0.95) -> pd.DataFrame:
    """Lay an MLE and a Bayesian fit of the same model side by side.

    Parameters
    ----------
    res : MLEResult
        The maximum-likelihood fit.
    datatree : xarray.DataTree
        A Bayesian fit with a ``posterior`` group with ``(chain, draw)`` sample
        dimensions, e.g. from :func:`mleppl.fit_nuts`. A ``prior`` group, when
        present, is used to measure how much the prior pulls.
    level : float
        Level of both intervals (Wald for the MLE, equal-tailed for the posterior).

    Returns
    -------
    pandas.DataFrame
        One row per scalar parameter, indexed first by ``res.param_names``, then
        by labels present only in the posterior (deterministic sites of the MLE
        result fill their MLE side). A parameter present in one fit only is kept
        with NaN on the other side and flagged. Columns:

        ``mle, se``
            Estimate and standard error.
        ``post_mean, post_median, post_sd, mcse_mean, r_hat``
            Posterior summaries, the Monte-Carlo standard error of the mean and
            the rank-normalized split R-hat.
        ``std_diff``
            ``(post_mean − mle) / se``.

        For a fit with random effects (``random=``) the rows of the random-effect
        sites (``u[0]``, …) carry their conditional modes and conditional SDs
        (``res.random_effects``) on the MLE side: the empirical-Bayes estimate
        of each group's effect beside its posterior.
        ``sd_ratio``
            ``post_sd / se``.
        ``mle_lower, mle_upper, post_lower, post_upper``
            Wald interval ``mle ± z·se`` and the posterior equal-tailed interval.
        ``overlap``
            Length of the intersection of the two intervals over the length of
            their union: 1 identical, 0 disjoint.
        ``prior_weight, prior_shift, prior_conflict``
            What the prior alone would do under a normal approximation of the
            likelihood (see Notes): the share of the likelihood's variance it
            removes, the shift of the mean it causes in standard errors, and how
            far its centre lies from the MLE in combined sd (NaN without a
            ``prior`` group, and for labels not in ``res.param_names``).
        ``flag``
            True where the fits disagree beyond the thresholds below.
        ``reason``
            The likely cause(s) of a flag, in words ("" where not flagged).

    Raises
    ------
    TypeError
        ``res`` is not an MLEResult.
    ValueError
        ``datatree`` has no ``posterior`` group with ``chain`` and ``draw`` dims.

    Notes
    -----
    A row is flagged when any of

    * :math:`|\\bar\\theta - \\hat\\theta| / \\mathrm{se} > 0.25` (``STD_DIFF_TOL``),
    * :math:`\\mathrm{sd}/\\mathrm{se} \\notin [1/1.25,\\ 1.25]` (``SD_RATIO_TOL``),
    * ``r_hat`` > 1.01 (``RHAT_TOL``),
    * the standard error is not finite, or the parameter is in one fit only.

    By Bernstein–von Mises, with a prior that is smooth and positive at the
    truth, :math:`\\bar\\theta - \\hat\\theta = O_p(n^{-1})` and
    :math:`\\mathrm{sd}/\\mathrm{se} = 1 + O_p(n^{-1/2})`, so both statistics
    go to their null values; a shift of 0.25 se moves a 95 % interval by 6 %
    of its width. The Monte-Carlo error of ``std_diff`` is ``mcse_mean/se``,
    about 0.03 with NUTS's default 2 × 1000 draws, well below the threshold.

    The prior's effect is computed jointly, so that a prior on one parameter is
    seen to pull the parameters correlated with it. With :math:`\\Sigma` =
    ``res.cov``, :math:`P = \\mathrm{diag}(s_j^{-2})` from a robust prior scale
    :math:`s_j` (half the central 68 % range of the prior draws) and :math:`m`
    the prior medians,

    .. math:: \\Sigma_{\\text{post}} = (\\Sigma^{-1} + P)^{-1}, \\quad
       \\text{prior\\_weight}_i = 1 - \\frac{(\\Sigma_{\\text{post}})_{ii}}{\\Sigma_{ii}},
       \\quad \\text{prior\\_shift}_i = \\frac{[\\Sigma_{\\text{post}} P (m - \\hat\\theta)]_i}{\\mathrm{se}_i},
       \\quad \\text{prior\\_conflict}_i = \\frac{|m_i - \\hat\\theta_i|}{\\sqrt{\\mathrm{se}_i^2 + s_i^2}}.

    The reasons, checked in this order: the MLE did not converge; ``r_hat``
    above 1.01; a **boundary**
    (the Wald interval crosses a bound of the support); a **prior–data
    conflict** on any parameter (``prior_conflict`` > 2: the prior's centre is
    implausible under the likelihood, a check in the spirit of Box 1980);
    **prior pulling**
    (``prior_weight`` ≥ 0.10, or without prior draws ``sd/se < 0.8``);
    **weak identification** (``sd/se > 1.25`` without a prior–data conflict,
    or no finite se); a **small
    sample** (fewer than 10 observations per parameter, or posterior skewness
    :math:`|\\bar\\theta - \\tilde\\theta|/\\mathrm{sd} > 0.10`); failing
    all of these, for a parameter with a bounded support, **marginalization**
    (the posterior integrates the other parameters out, the MLE profiles them:
    the gap between :math:`\\mathrm{RSS}/(n-p)` and :math:`\\mathrm{RSS}/n`).

    Examples
    --------
    >>> import numpy as np, numpyro, numpyro.distributions as dist
    >>> import mleppl
    >>> def model(y=None):
    ...     mu = numpyro.sample("mu", dist.Normal(0.0, 0.2))  # informative prior
    ...     with numpyro.plate("obs", 5):
    ...         numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)
    >>> y = np.array([2.0, 3.0, 2.5, 3.5, 3.0])
    >>> res = mleppl.fit_mle(model, y=y)
    >>> dt = mleppl.fit_nuts(model, y=y, num_warmup=100, num_samples=200, num_chains=1,
    ...                      progress_bar=False)
    >>> table = mleppl.compare(res, dt)
    >>> table.loc["mu", ["mle", "se"]].round(3).tolist()
    [2.8, 0.447]
    >>> bool(table.loc["mu", "flag"]), "prior pulling" in table.loc["mu", "reason"]
    (True, True)
    """
    if not isinstance(res, MLEResult):
        raise TypeError(f"res: expected an MLEResult from mleppl.fit_mle, got {type(res).__name__}")
    level = check_level(level)
    post = _posterior_group(datatree)
    coords = dict(res.problem.layout.coords) if res.problem is not None else {}
    draws = _flatten(post, coords=coords)
    diag = posterior_diagnostics(datatree)
    rhat, ess = _flatten_stat(diag["r_hat"], coords), _flatten_stat(diag["ess_mean"], coords)
    has_prior = "prior" in datatree.children
    prior = _flatten(datatree["prior"].to_dataset(), coords=coords) if has_prior else {}
    mle = _mle_side(res)
    effect = _prior_effect(res, prior) if has_prior else {}
    conflicts = [n for n, (_, _, c) in effect.items() if c > PRIOR_CONFLICT_TOL]
    bounds = _support_bounds(res)
    labels = list(res.param_names) + [k for k in draws if k not in res.param_names]
    z = normal_quantile(0.5 + level / 2.0)
    tail = (1.0 - level) / 2.0
    rows = []
    for label in labels:
        est, se = mle.get(label, (math.nan, math.nan))
        d = draws.get(label)
        row = {"mle": est, "se": se}
        if d is None:
            row.update(
                dict.fromkeys(["post_mean", "post_median", "post_sd", "post_lower", "post_upper"], math.nan)
            )
            row["mcse_mean"] = row["r_hat"] = math.nan
        else:
            lo, hi = np.quantile(d, [tail, 1.0 - tail])
            sd = float(np.std(d, ddof=1)) if d.size > 1 else math.nan
            row.update(
                post_mean=float(np.mean(d)),
                post_median=float(np.median(d)),
                post_sd=sd,
                post_lower=float(lo),
                post_upper=float(hi),
                mcse_mean=sd / math.sqrt(ess[label]) if ess.get(label, 0) > 0 else math.nan,
                r_hat=rhat.get(label, math.nan),
            )
        with np.errstate(divide="ignore", invalid="ignore"):
            row["std_diff"] = (row["post_mean"] - est) / se if se > 0 else math.nan
            row["sd_ratio"] = row["post_sd"] / se if se > 0 else math.nan
        row["mle_lower"], row["mle_upper"] = est - z * se, est + z * se
        row["overlap"] = _overlap(row["mle_lower"], row["mle_upper"], row["post_lower"], row["post_upper"])
        row["prior_weight"], row["prior_shift"], row["prior_conflict"] = effect.get(label, (math.nan,) * 3)
        row["flag"] = _is_flagged(row)
        row["_z"] = z
        row["reason"] = (
            _reasons(
                row,
                bounds=bounds.get(label, (-math.inf, math.inf)),
                res=res,
                has_prior=has_prior,
                conflicts=conflicts,
            )
            if row["flag"]
            else ""
        )
        rows.append(row)
    columns = [
        "mle",
        "se",
        "post_mean",
        "post_median",
        "post_sd",
        "mcse_mean",
        "r_hat",
        "std_diff",
        "sd_ratio",
        "mle_lower",
        "mle_upper",
        "post_lower",
        "post_upper",
        "overlap",
        "prior_weight",
        "prior_shift",
        "prior_conflict",
        "flag",
        "reason",
    ]
    return pd.DataFrame(rows, index=pd.Index(labels, name="parameter"))[columns]


def _posterior_group(datatree):
    children = getattr(datatree, "children", None)
    if children is None or "posterior" not in children:
        raise ValueError(
            "datatree: expected an ArviZ DataTree with a 'posterior' group (e.g. from mleppl.fit_nuts), "
            f"got {type(datatree).__name__}"
            + (f" with groups {sorted(children)}" if children is not None else "")
        )
    post = datatree["posterior"].to_dataset()
    missing = {"chain", "draw"} - set(post.dims)
    if missing:
        raise ValueError(
            f"datatree: expected posterior sample dims ('chain', 'draw'), got dims {tuple(post.dims)}"
        )
    return post


def _overlap(a_lo: float, a_hi: float, b_lo: float, b_hi: float) -> float:
    """|A ∩ B| / |A ∪ B| for two intervals (NaN if either is missing)."""
    vals = (a_lo, a_hi, b_lo, b_hi)
    if any(not math.isfinite(v) for v in vals):
        return math.nan
    inter = max(0.0, min(a_hi, b_hi) - max(a_lo, b_lo))
    union = max(a_hi, b_hi) - min(a_lo, b_lo)
    return inter / union if union > 0 else 1.0


def _is_flagged(row: dict[str, Any]) -> bool:
    if math.isnan(row["mle"]) or math.isnan(row["post_mean"]) or not math.isfinite(row["se"]):
        return True
    if abs(row["std_diff"]) > STD_DIFF_TOL:
        return True
    if not (1.0 / SD_RATIO_TOL <= row["sd_ratio"] <= SD_RATIO_TOL):
        return True
    return bool(row["r_hat"] > RHAT_TOL)


# --------------------------------------------------------------------------- plot
def _compare_rows(res: MLEResult, post, standardize: bool, level: float):
    """Per scalar label: the MLE's estimate and intervals (``level`` and 50 %, as
    :meth:`MLEResult.conf_int` reports them) and the posterior's draws, standardized by
    the MLE's ``(θ − θ̂)/se`` when asked; labels named as in ``res.param_names``."""
    coords = dict(res.problem.layout.coords) if res.problem is not None else {}
    draws = _flatten(post, coords=coords)
    mle = _mle_side(res)
    outer, inner = (res.conf_int(lv) for lv in (level, 0.5))
    z_out, z_in = normal_quantile(0.5 + level / 2.0), normal_quantile(0.75)
    rows = {}
    for label in list(mle) + [k for k in draws if k not in mle]:
        est, se = mle.get(label, (math.nan, math.nan))
        if standardize and not (label in draws and se > 0 and math.isfinite(se)):
            continue  # the standardized view needs both sides and a usable se
        if label in outer.index:  # parameters: the table's (support-respecting) Wald intervals
            ci = (outer.loc[label, "lower"], outer.loc[label, "upper"])
            ci50 = (inner.loc[label, "lower"], inner.loc[label, "upper"])
        else:  # deterministic sites: est ± z·se, as compare() reports them
            ci, ci50 = (est - z_out * se, est + z_out * se), (est - z_in * se, est + z_in * se)
        d = draws.get(label)
        if standardize:
            with np.errstate(divide="ignore", invalid="ignore"):
                ci, ci50 = ((np.asarray(c, float) - est) / se for c in (ci, ci50))
                d, est = (d - est) / se, 0.0
        rows[label] = (est, tuple(ci), tuple(ci50), d)
    return rows


def plot_compare(
    res: MLEResult,
    datatree,
    *,
    path=None,
    standardize: bool = True,
    level: float = 0.95,
    rng_key=None,
):
    """Forest plot of the MLE and the Bayesian fit of the same model, on one axis.

    Parameters
    ----------
    res : MLEResult
        The maximum-likelihood fit.
    datatree : xarray.DataTree
        A Bayesian fit with a ``posterior`` group with ``(chain, draw)`` dims
        (e.g. from :func:`fit_nuts`).
    path : str or os.PathLike, optional
        Where to save the figure (PNG, or any format matplotlib infers from the
        suffix).
    standardize : bool
        True: plot :math:`(\\theta - \\hat\\theta)/\\mathrm{se}` so that
        parameters on very different scales share one readable axis; the MLE
        then sits at 0 with its interval near ±1.96, and the posterior's mean and
        width read directly as ``std_diff`` and ``sd_ratio`` of :func:`compare`.
        Variables without an MLE side are left out of this view. False: the
        natural scale, every posterior variable shown.
    level : float
        Level of the outer interval; the inner one is 50 %.
    rng_key : optional
        Unused (the MLE side is no longer drawn); kept so that existing calls work.

    Returns
    -------
    arviz_plots.PlotCollection
        The plot, one row per scalar parameter labelled as in ``res.param_names``
        (``beta[age]`` with ``coords=``), one line per fit (``.viz["twig"]["beta[age]"]``
        holds the matplotlib objects; ``.savefig(path)`` saves it).

    Notes
    -----
    The MLE side is exact, not drawn: its marker is :math:`\\hat\\theta` (0 when
    standardized) and its intervals are those of :meth:`MLEResult.conf_int` at
    ``level`` and 50 %, the summary table's Wald intervals (for a bounded parameter the
    interval on the unconstrained scale mapped back, so it stays inside the support;
    ``est ± z·se`` for deterministic sites, as :func:`compare` reports them). The
    posterior side is its mean and equal-tailed intervals. Standardized, each value
    :math:`x` is shown as :math:`(x - \\hat\\theta)/\\mathrm{se}`.

    Examples
    --------
    >>> import numpy as np, numpyro, numpyro.distributions as dist
    >>> import mleppl
    >>> def model(y=None):
    ...     mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
    ...     with numpyro.plate("obs", 4):
    ...         numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)
    >>> y = np.array([0.5, 1.0, 1.5, 2.0])
    >>> res = mleppl.fit_mle(model, y=y)
    >>> dt = mleppl.fit_nuts(model, y=y, num_warmup=50, num_samples=50, num_chains=1,
    ...                      progress_bar=False)
    >>> pc = mleppl.plot_compare(res, dt)
    >>> type(pc).__name__
    'PlotCollection'
    """
    import xarray as xr

    if not isinstance(res, MLEResult):
        raise TypeError(f"res: expected an MLEResult from mleppl.fit_mle, got {type(res).__name__}")
    if not isinstance(standardize, bool):
        raise TypeError(f"standardize: expected True or False, got {standardize!r}")
    level = check_level(level)
    post = _posterior_group(datatree)
    chains, draws = int(post.sizes["chain"]), int(post.sizes["draw"])
    rows = _compare_rows(res, post, standardize, level)
    nan = np.full((chains, draws), np.nan)
    # one variable per scalar label ("beta[age]"), both fits of the same (chain, draw) shape;
    # every marker and interval is given, none is estimated from draws of the MLE
    mle = {k: (("chain", "draw"), np.full((chains, draws), est)) for k, (est, *_) in rows.items()}
    bayes = {
        k: (("chain", "draw"), nan if d is None else d.reshape(chains, draws)) for k, (*_, d) in rows.items()
    }
    tail = (1.0 - level) / 2.0

    def stat(mle_value, bayes_value, bound: bool):
        out = {}
        for k, (est, ci, ci50, d) in rows.items():
            a = np.asarray(mle_value(est, ci, ci50), float)
            b = np.full_like(a, np.nan) if d is None else np.asarray(bayes_value(d), float)
            out[k] = (("model", "ci_bound") if bound else ("model",), np.stack([a, b]))
        coords = {"model": ["MLE", "NUTS"], **({"ci_bound": ["lower", "upper"]} if bound else {})}
        return xr.Dataset(out, coords=coords)

    stats = {
        "point_estimate": stat(lambda e, c, c50: e, np.mean, False),
        "twig": stat(lambda e, c, c50: c, lambda d: np.quantile(d, [tail, 1.0 - tail]), True),
        "trunk": stat(lambda e, c, c50: c50, lambda d: np.quantile(d, [0.25, 0.75]), True),
    }
    trees = {
        "MLE": xr.DataTree.from_dict({"posterior": xr.Dataset(mle)}),
        "NUTS": xr.DataTree.from_dict({"posterior": xr.Dataset(bayes)}),
    }
    xlabel = "(θ − θ̂) / se of the MLE" if standardize else "value"
    return plot_forest_models(trees, ci_prob=level, xlabel=xlabel, path=path, stats=stats)
