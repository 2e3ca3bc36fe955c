r"""Export a maximum-likelihood fit as an ArviZ 1.x ``DataTree``.

The only module that imports ArviZ (``arviz_base``, ``arviz_stats``). The tree
looks like the result of a sampler so that ``az.summary``, ``az.loo``,
``az.compare`` and the ``plot_ppc_*`` checks work unchanged; its attrs say
what the "posterior" really is.

Groups
------
posterior
    :math:`\theta_s = \theta(z_s)`, :math:`z_s \sim N(\hat z, \Sigma_z)` drawn on
    the unconstrained scale (shape ``(1, S, ...)``), or the point estimate as
    one draw ``(1, 1, ...)``; deterministic sites evaluated at each draw.
sample_stats
    ``loglik`` (total log-likelihood per draw), ``lp`` (= loglik + log|J|, the
    log-density of the flat-prior target on the unconstrained scale) and
    ``log_q`` (the normal approximation's log-density; asymptotic draws only).
log_likelihood
    :math:`\log p(y_i \mid \theta_s)` per observation and observed site (masked
    observations left out: see :func:`to_datatree`).
posterior_predictive
    :math:`y^{rep}_s \sim p(y \mid \theta_s)` per observed site.
observed_data, constant_data
    The data at the observed sites; the model's array arguments.
mle, mle_se, mle_cov
    The estimate and its standard errors (free and deterministic sites) and
    ``cov`` / ``cov_z`` / ``z``: nothing of the fit is lost.
"""

from __future__ import annotations

import re

import numpy as np

from ..core.x64 import float64
from ..model.inputs import as_rng_key
from .predictive import check_num_samples, draw_z, evaluate_draws

__all__ = ["to_datatree", "loo", "nuts_to_datatree", "posterior_diagnostics"]

ESTIMATOR = "maximum likelihood"


class PointwiseLikelihoodError(ValueError):
    """The model's log-likelihood does not split into terms per observation."""


def _dims(var: str, plates: tuple[str | None, ...]) -> list[str]:
    return [p if p is not None else f"{var}_dim_{i}" for i, p in enumerate(plates)]


def _arg_name(label: str, i: int) -> str:
    name = re.sub(r"[^0-9A-Za-z_]+", "_", label).strip("_")
    return name if label.startswith("'") else f"arg{i}"


class _Observed:
    """How one observed site appears in the tree: its name, dims and kept entries.

    The tree names the site by the user's name (``label``: ``y`` for the ``y_observed``
    site NumPyro makes for ``obs_mask``); ``name`` is the trace's name, under which the
    draws are stored. A masked site keeps only its observed entries, along one dim
    ``<label>_obs`` whose coordinates are their flat positions in the site's batch shape
    (the row numbers of a plate); ``full_dims`` are the plate dims of the whole site.
    """

    def __init__(self, site):
        self.name = site.name
        label = self.label = site.label
        self.batch_ndim = len(site.batch_shape)
        self.event_dims = [f"{label}_event_{i}" for i in range(site.event_dim)]
        self.full_dims = _dims(label, site.dims[: self.batch_ndim]) + self.event_dims
        self.mask = site.mask
        if self.mask is None or self.mask.all():
            self.mask = None
            self.dims = self.full_dims
            self.batch_dims = self.dims[: self.batch_ndim]
            self.coords = {}
        else:  # masked: keep only the observed entries, along one dim indexed by position
            dim = f"{label}_obs"
            self.dims = [dim] + self.event_dims
            self.batch_dims = [dim]
            self.coords = {dim: np.flatnonzero(self.mask.ravel())}

    def select(self, x: np.ndarray, lead: int) -> np.ndarray:
        """Keep the observed entries of an array with ``lead`` leading sample axes."""
        if self.mask is None:
            return x
        flat = x.reshape(x.shape[:lead] + (-1,) + x.shape[lead + self.batch_ndim :])
        return np.take(flat, self.coords[self.batch_dims[0]], axis=lead)


def _check_pointwise(sites, groups: list[str], marginal: bool = False) -> None:
    factors = [o.name for o in sites.data if o.kind == "factor"]
    sub = list(sites.subsampled)
    if marginal and "log_likelihood" in groups:
        raise PointwiseLikelihoodError(
            "log_likelihood: the pointwise log-likelihood of a marginal fit (latent sites summed or "
            "integrated out) does not split into terms per observation; pass log_likelihood=False "
            "(posterior_predictive draws the latent sites and works)"
        )
    if factors and "log_likelihood" in groups:
        raise PointwiseLikelihoodError(
            f"log_likelihood: the pointwise log-likelihood cannot be formed: site(s) {factors} "
            "are numpyro.factor terms, expected only observed sample sites (a factor is one "
            "number, not a term per observation); pass log_likelihood=False"
        )
    if sub and groups:
        raise PointwiseLikelihoodError(
            f"{' and '.join(groups)}: the pointwise log-likelihood cannot be formed: plate(s) "
            f"{sub} subsample the data, expected every observation in the trace; fit and export "
            "with full plates, or pass log_likelihood=False, posterior_predictive=False"
        )


def marginal(problem) -> bool:
    """Latent sites summed or integrated out: no pointwise log-likelihood."""
    return bool(problem.sites.discrete) or problem.random is not None


def _sample_axes(x: np.ndarray) -> np.ndarray:
    """(S, ...) -> (1, S, ...): one chain."""
    return np.asarray(x)[None, ...]


def _with_constant_data(dt, constant: dict, obs: dict):
    """``dt`` with the model's array arguments as ``constant_data`` (after ``observed_data``).

    Built on its own: a data argument named like its observed site (``y``) holds every
    entry, masked ones included, so it takes the site's plate dims (``n``), never the
    kept-entry dim (``y_obs``) of the observed groups; other arguments get ArviZ's default
    dims.
    """
    import xarray as xr
    from arviz_base import dict_to_dataset

    dims = {
        k: o.full_dims for k, o in obs.items() if k in constant and np.ndim(constant[k]) == len(o.full_dims)
    }
    ds = dict_to_dataset(constant, dims=dims or None, sample_dims=[])
    groups = {}
    for g, node in dt.children.items():
        groups[g] = node.to_dataset()
        if g == "observed_data":
            groups["constant_data"] = ds
    groups.setdefault("constant_data", ds)
    out = xr.DataTree.from_dict(groups, name=dt.name)
    out.attrs.update(dt.attrs)
    return out


def _mle_groups(rec, dims: dict) -> dict:
    import xarray as xr

    est, se = {}, {}
    for name, v in {**rec.params, **rec.deterministic}.items():
        d = dims.get(name, _dims(name, (None,) * np.ndim(v)))
        est[name] = (d, np.asarray(v))
        err = rec.se.get(name, rec.deterministic_se.get(name))
        se[name] = (d, np.asarray(err))
    pn = list(rec.param_names)
    zlab = [f"z[{i}]" for i in range(len(rec.z))]
    cov = xr.Dataset(
        {
            "cov": (("param", "param_bis"), np.asarray(rec.cov)),
            "z": (("z_index",), np.asarray(rec.z)),
            "cov_z": (("z_index", "z_index_bis"), np.asarray(rec.cov_z)),
        },
        coords={"param": pn, "param_bis": pn, "z_index": zlab, "z_index_bis": zlab},
    )
    return {"mle": xr.Dataset(est), "mle_se": xr.Dataset(se), "mle_cov": cov}


def _attrs(rec, uncertainty: bool, num_samples: int) -> dict:
    kind = (
        f"{num_samples} draws from the asymptotic normal N(z_hat, Sigma_z) of the MLE on the "
        "unconstrained scale, mapped to the constrained scale"
        if uncertainty
        else "the maximum-likelihood estimate as a single draw"
    )
    return {
        "estimator": ESTIMATOR,
        "posterior_kind": "asymptotic_normal" if uncertainty else "point_estimate",
        "posterior_description": kind,
        "cov_type": rec.cov_type,
        "loglik": float(rec.loglik),
        "aic": float(rec.aic),
        "bic": float(rec.bic),
        "nobs": int(rec.nobs),
        "n_params": int(rec.n_params),
        "converged": int(bool(rec.converged)),
        "method": rec.method,
        "inference_library": "mleppl",
        # REML: the restricted log-likelihood, these fixed-effect sites integrated out ("" for ML)
        "reml": ",".join(rec.reml),
    }


def build_datatree(
    rec,
    problem,
    *,
    num_samples: int,
    rng_key,
    uncertainty: bool,
    log_likelihood: bool,
    posterior_predictive: bool,
    predictions: dict | None = None,
    predictions_constant_data: dict | None = None,
    observed_names: tuple[str, ...] | None = None,
):
    """The DataTree of ``rec`` with the data of ``problem`` (the fit's, or new data)."""
    import jax
    from arviz_base import from_dict

    s = check_num_samples(num_samples)
    key = as_rng_key(rng_key)
    k_z, k_y, k_pp = jax.random.split(key, 3)
    sites = problem.sites
    observed = tuple(o.name for o in sites.data if o.kind != "factor")
    if observed_names is not None:
        observed = tuple(n for n in observed if n in observed_names)
    groups = [
        g
        for g, on in (("log_likelihood", log_likelihood), ("posterior_predictive", posterior_predictive))
        if on
    ]
    _check_pointwise(sites, groups, marginal=marginal(problem))

    leaves = problem.data
    z, log_q = draw_z(rec, k_z, s, uncertainty)
    if not uncertainty:
        z = z[:1]
    fixed = {n: np.asarray(rec.params[n]) for n in rec.reml}  # REML's fixed effects at the estimate
    draws = evaluate_draws(problem, leaves, z, k_y, observed=observed, fixed=fixed)

    dims = {name: _dims(name, d) for name, d in rec.problem.sites.dims}
    coord_labels = dict(problem.layout.coords)
    obs = {}  # the user's site name -> how it appears in the tree
    for n in observed:
        o = _Observed(sites.observed_site(n))
        obs[o.label] = o
    coords: dict = {}
    for name, labels in coord_labels.items():  # named coordinates (coords=) of vector sites
        if name in dims and len(dims[name]) == 1:
            coords[dims[name][0]] = list(labels)
    for label, o in obs.items():
        dims[label] = o.dims
        coords.update(o.coords)

    data: dict = {
        "posterior": {k: _sample_axes(v) for k, v in {**draws.params, **draws.deterministic}.items()},
    }
    total_ll = sum(np.sum(v.reshape(v.shape[0], -1), axis=1) for v in draws.loglik.values())
    stats = {"loglik": _sample_axes(total_ll), "lp": _sample_axes(total_ll + draws.log_jacobian)}
    if log_q is not None:
        stats["log_q"] = _sample_axes(log_q)
    data["sample_stats"] = stats
    if log_likelihood:
        data["log_likelihood"] = {
            label: _sample_axes(o.select(draws.loglik[o.name], 1)) for label, o in obs.items()
        }
    if posterior_predictive:
        reps = draws.replicates
        if not uncertainty and s > 1:  # plug-in: S replicates at the estimate
            reps = evaluate_draws(
                problem, leaves, np.broadcast_to(z, (s, z.shape[1])), k_pp, observed=observed, fixed=fixed
            ).replicates
        data["posterior_predictive"] = {
            label: _sample_axes(o.select(reps[o.name], 1)) for label, o in obs.items()
        }
    data["observed_data"] = {
        label: o.select(sites.observed_site(o.name).value, 0) for label, o in obs.items()
    }
    constant = {_arg_name(lab, i): np.asarray(x) for i, (lab, x) in enumerate(problem.arrays())}
    if predictions is not None:
        data["predictions"] = {k: _sample_axes(np.asarray(v)) for k, v in predictions.items()}
    if predictions_constant_data is not None:
        data["predictions_constant_data"] = {k: np.asarray(v) for k, v in predictions_constant_data.items()}
    pred_dims = {  # new covariates: plate dims of any size; a masked site's kept-entry dim does not apply
        k: v
        for k, v in dims.items()
        if predictions and k in predictions and (k not in obs or obs[k].mask is None)
    }

    attrs = _attrs(rec, uncertainty, s)
    dt = from_dict(data, dims=dims, coords=coords or None, pred_dims=pred_dims or None)
    dt = _with_constant_data(dt, constant, obs)
    dt.attrs.update(attrs)
    for g in ("posterior", "sample_stats", "log_likelihood", "posterior_predictive"):
        if g in dt.children:
            dt[g].attrs.update(attrs)
    for name, ds in _mle_groups(rec, dims).items():
        ds.attrs.update(attrs)
        dt[name] = ds
    return dt


@float64
def to_datatree(
    rec,
    *,
    num_samples: int = 1000,
    rng_key=None,
    uncertainty: bool = True,
    log_likelihood: bool | None = None,
    posterior_predictive: bool = True,
    predictions: dict | None = None,
    predictions_constant_data: dict | None = None,
):
    r"""The fit as an ArviZ 1.x ``DataTree``, ready for ``az.summary``, ``az.loo`` and PPC plots.

    Parameters
    ----------
    res : MLEResult
        A fit from :func:`mleppl.fit_mle`.
    num_samples : int
        Draws S of the posterior-like group (``uncertainty=True``) or of the
        plug-in posterior predictive (``uncertainty=False``).
    rng_key : jax.random.PRNGKey or int, optional
        Randomness of the draws (default key 0: reproducible).
    uncertainty : bool
        True: ``posterior`` holds S draws from the asymptotic normal of the
        estimator, drawn on the unconstrained scale; False: the point estimate
        as one draw (chain and draw dims kept, size 1), and
        ``posterior_predictive`` holds S plug-in replicates.
    log_likelihood, posterior_predictive : bool
        Include these groups (``log_likelihood`` defaults to True, except for fits with
        latent sites summed or integrated out, whose likelihood has no pointwise terms).
    predictions, predictions_constant_data : dict, optional
        Draws for new covariates (the output of :meth:`MLEResult.predictive`)
        and those covariates, stored as ArviZ's ``predictions`` and
        ``predictions_constant_data`` groups.

    Returns
    -------
    xarray.DataTree
        Groups ``posterior``, ``sample_stats``, ``log_likelihood``,
        ``posterior_predictive``, ``observed_data``, ``constant_data``
        (``predictions``…) plus ``mle``, ``mle_se``, ``mle_cov`` (estimate,
        standard errors, covariances). Dims are named after plates. Attrs
        record ``estimator``, ``posterior_kind``, ``cov_type``, ``loglik``,
        ``aic``, ``bic``, ``converged``.

    Raises
    ------
    ValueError
        Bad options; a singular observed information with
        ``uncertainty=True``; a model whose pointwise log-likelihood cannot be
        formed (``numpyro.factor`` terms, subsampling plates) when
        ``log_likelihood`` or ``posterior_predictive`` is requested.

    Notes
    -----
    Draws: :math:`z_s = \hat z + L\varepsilon_s`, :math:`L L^\top = \Sigma_z`,
    :math:`\theta_s = \theta(z_s)`. ``log_likelihood`` holds
    :math:`\log p(y_i \mid \theta_s)` (times the site's scale).

    Observed sites carry the model's names: a site with ``obs_mask``, which NumPyro
    traces as ``<site>_observed``, is ``<site>`` in ``log_likelihood``,
    ``posterior_predictive`` and ``observed_data``. Masked observations
    (``obs_mask``, ``handlers.mask``) are **left out**, the same way in all three
    groups: the site has one dim ``<site>_obs`` over its observed entries only,
    whose coordinates are their flat positions in the site's batch shape (the
    original row numbers of a plate: with rows 0–4 masked out of 40, ``y_obs`` runs
    5, …, 39). So ``log_likelihood`` sums to ``res.loglik`` and ``az.loo`` counts
    only observed data (ArviZ's LOO does not skip NaN: padding the masked
    entries with NaN would make every LOO estimate NaN). ``constant_data`` keeps the
    model's arguments whole, masked entries included, on the plate dims.
    ``sample_stats.lp`` is :math:`\log L(\theta(z_s)) + \log|J(z_s)|` and
    ``sample_stats.log_q`` is :math:`\log N(z_s; \hat z, \Sigma_z)`: the
    inputs of ``az.loo_approximate_posterior``, which corrects PSIS-LOO for
    drawing from the normal approximation rather than the flat-prior posterior
    (see :func:`mleppl.loo`).

    Examples
    --------
    >>> import numpy as np, numpyro, numpyro.distributions as dist
    >>> from mleppl import fit_mle
    >>> def model(y=None):
    ...     mu = numpyro.sample("mu", dist.Normal(0, 10))
    ...     with numpyro.plate("obs", 4):
    ...         numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)
    >>> res = fit_mle(model, y=np.array([0.5, 1.0, 1.5, 2.0]))
    >>> dt = res.to_datatree(num_samples=200)
    >>> dt.posterior["mu"].shape, dt.log_likelihood["y"].dims
    ((1, 200), ('chain', 'draw', 'obs'))
    >>> dt.attrs["estimator"], float(dt.mle["mu"])
    ('maximum likelihood', 1.25)
    """
    if log_likelihood is None:  # on where it exists: not for marginal (latent-variable) fits
        log_likelihood = not marginal(rec.problem)
    for opt, val in (
        ("uncertainty", uncertainty),
        ("log_likelihood", log_likelihood),
        ("posterior_predictive", posterior_predictive),
    ):
        if not isinstance(val, bool):
            raise TypeError(f"{opt}: expected True or False, got {val!r}")
    for opt, val in (("predictions", predictions), ("predictions_constant_data", predictions_constant_data)):
        if val is not None and not isinstance(val, dict):
            raise TypeError(f"{opt}: expected a dict of name -> array or None, got {type(val).__name__}")
    return build_datatree(
        rec,
        rec.problem,
        num_samples=num_samples,
        rng_key=rng_key,
        uncertainty=uncertainty,
        log_likelihood=log_likelihood,
        posterior_predictive=posterior_predictive,
        predictions=predictions,
        predictions_constant_data=predictions_constant_data,
    )


def loo(dt, *, var_name: str | None = None, pointwise: bool | None = None):
    r"""PSIS-LOO of an mleppl tree, with the approximate-posterior correction where it applies.

    Parameters
    ----------
    dt : xarray.DataTree
        From :meth:`MLEResult.to_datatree`.
    var_name : str, optional
        Observed site (needed when the model has several).
    pointwise : bool, optional
        Return pointwise values.

    Returns
    -------
    arviz_stats ELPDData

    Raises
    ------
    ValueError
        For a tree holding only the point estimate (LOO needs draws).

    Notes
    -----
    For draws from the asymptotic normal, ``az.loo_approximate_posterior`` with
    :math:`\log p = \log L + \log|J|` (flat prior on :math:`\theta`) and
    :math:`\log q = \log N(z; \hat z, \Sigma_z)` reweights the draws towards
    the flat-prior posterior before the leave-one-out importance sampling.
    Other trees go to plain ``az.loo``.

    Examples
    --------
    >>> import numpy as np, numpyro, numpyro.distributions as dist
    >>> from mleppl import fit_mle, loo
    >>> def model(y=None):
    ...     mu = numpyro.sample("mu", dist.Normal(0, 10))
    ...     with numpyro.plate("obs", 20):
    ...         numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)
    >>> res = fit_mle(model, y=np.linspace(-1, 1, 20))
    >>> round(float(loo(res.to_datatree(num_samples=500)).elpd), 1)
    -22.8
    """
    import arviz_stats as azs

    post = dt["posterior"] if "posterior" in dt.children else None
    if post is not None and post.sizes.get("draw", 0) * post.sizes.get("chain", 0) < 2:
        raise ValueError(
            "dt: expected a tree with parameter draws (to_datatree(uncertainty=True)), got the point "
            "estimate as a single draw; LOO needs draws"
        )
    ss = dt["sample_stats"] if "sample_stats" in dt.children else None
    if ss is not None and "log_q" in ss.data_vars and np.all(np.isfinite(ss["log_q"].values)):
        return azs.loo_approximate_posterior(
            dt, ss["lp"], ss["log_q"], pointwise=pointwise, var_name=var_name
        )
    return azs.loo(dt, pointwise=pointwise, var_name=var_name)


def nuts_to_datatree(mcmc, *, prior: dict | None = None):
    """DataTree of a NumPyro MCMC run with pointwise ``log_likelihood`` (so LOO works).

    ``prior``: optional dict site → draws shaped ``(1, S, ...)`` for the ``prior`` group.
    """
    from arviz_base import from_numpyro

    return from_numpyro(mcmc, prior=prior, log_likelihood=True)


def posterior_diagnostics(dt) -> dict:
    """``{"r_hat": Dataset, "ess_mean": Dataset}`` per element of the posterior variables."""
    import arviz_stats as azs

    return {
        "r_hat": azs.rhat(dt, group="posterior").to_dataset(),
        "ess_mean": azs.ess(dt, group="posterior", method="mean").to_dataset(),
    }


def plot_forest_models(
    trees: dict, *, ci_prob: float = 0.95, xlabel: str | None = None, path=None, stats: dict | None = None
):
    """Forest plot of several fits (dict label → DataTree) on one axis, coloured by fit.

    Means and equal-tailed intervals (50 % and ``ci_prob``) skip NaN, so trees
    with different chain/draw sizes keep their intervals (ArviZ's outer join pads
    the smaller one with NaN); ``stats`` may give them instead (ArviZ's precomputed
    ``point_estimate``, ``trunk``, ``twig`` datasets with a ``model`` dim). A legend
    names the fits; the figure is as tall as its rows need and the axis label is kept
    inside it. matplotlib is imported here, lazily; without a display it falls back to
    Agg by itself.
    """
    import arviz_plots as azp

    skipna = {"skipna": True}
    stats = {"trunk": skipna, "twig": skipna, "point_estimate": skipna, **(stats or {})}
    n_rows = sum(
        int(
            np.prod(
                [t["posterior"][v].sizes[d] for d in t["posterior"][v].dims if d not in ("chain", "draw")]
            )
        )
        for t in list(trees.values())[:1]
        for v in t["posterior"].data_vars
    )
    pc = azp.plot_forest(
        trees,
        combined=True,
        point_estimate="mean",
        ci_kind="eti",
        ci_probs=(0.5, ci_prob),
        backend="matplotlib",
        stats=stats,
        figure_kwargs={"figsize": (8.0, 1.6 + 0.45 * len(trees) * max(n_rows, 1)), "layout": "constrained"},
    )
    pc.add_legend("model", title="fit")
    if xlabel is not None:
        for ax in np.ravel(pc.viz["plot"].sel(column="forest").values):
            ax.set_xlabel(xlabel)
    if path is not None:
        pc.savefig(str(path), bbox_inches="tight")
    return pc


def plot_ppc_check(dt, fname: str, sites: list[str], options: dict):
    """Call ``arviz_plots.<fname>`` (a ``plot_ppc_*`` check) on the tree for the named sites."""
    import inspect

    import arviz_plots

    plotter = getattr(arviz_plots, fname)
    options = dict(options)
    if "num_samples" in inspect.signature(plotter).parameters:
        # ArviZ draws 50 predictive curves by default and warns when fewer exist
        sizes = dt["posterior_predictive"].sizes
        options.setdefault("num_samples", min(50, int(sizes["chain"]) * int(sizes["draw"])))
    return plotter(dt, var_names=sites, **options)
