"""Posterior-predictive-style checks of a maximum-likelihood fit in one call.

The check is chosen from the observed site's data type, as ArviZ 1.x
recommends: continuous data get the predictive density against the data and
the PIT ECDF, counts a rootogram, binary / categorical / ordinal data the
PAV-adjusted calibration plot. ArviZ and matplotlib are imported lazily.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import numpy as np

from .adapters import numpyro as npa
from .core.x64 import float64
from .model.inputs import as_rng_key
from .model.problem import bind
from .reporting.arviz import build_datatree, plot_ppc_check

__all__ = ["plot_ppc", "KINDS", "DEFAULT_KIND"]

# kind -> (arviz_plots function, fixed keyword arguments)
_PLOTTERS = {
    "dist": ("plot_ppc_dist", {}),
    "ecdf": ("plot_ppc_dist", {"kind": "ecdf"}),
    "pit": ("plot_ppc_pit", {}),
    "dist_pit": ("plot_ppc_dist_pit", {}),
    "rootogram": ("plot_ppc_rootogram", {}),
    "pava": ("plot_ppc_pava", {}),
    "interval": ("plot_ppc_interval", {}),
    "tstat": ("plot_ppc_tstat", {}),
}
KINDS = tuple(_PLOTTERS)

DEFAULT_KIND = {
    "continuous": "dist_pit",
    "censored": "ecdf",
    "count": "rootogram",
    "binary": "pava",
    "categorical": "pava",
    "ordinal": "pava",
}
# kinds that only make sense for some data types
_REQUIRES = {
    "rootogram": ("count", "binary", "categorical", "ordinal"),
    "pava": ("binary", "categorical", "ordinal"),
    # a censored value's PIT is not uniform under a correct model (a point mass at the
    # censoring time): PIT checks would call a correct survival model a misfit
    "pit": ("continuous", "count", "binary", "categorical", "ordinal"),
    "dist_pit": ("continuous", "count", "binary", "categorical", "ordinal"),
}
_DISCRETE = ("count", "binary", "categorical", "ordinal")


def _problem_for(res, args: tuple, kwargs: dict, key):
    """The fit's own problem, or the given arguments bound to the fitted model."""
    if not args and not kwargs:
        return res.problem
    model = res.problem.require_model()
    try:
        other = bind(model, args, kwargs, key)
    except Exception as e:
        _check_observed_given(res, model, args, kwargs, key, e)
        raise
    _check_observed_given(res, model, args, kwargs, key, None)
    have = [(s.name, s.shape) for s in other.layout.sites]
    want = [(s.name, s.shape) for s in res.problem.layout.sites]
    if have != want:
        raise ValueError(
            f"the model with these arguments has free sites {have}, expected those of the fit {want} "
            "(pass data of the same structure as in fit_mle)"
        )
    return res.problem.with_data(other)


def _check_observed_given(res, model, args, kwargs, key, error) -> None:
    """A check compares simulated with observed data: new arguments must carry the data of
    every observed site of the fit (``plot_ppc(res, X_new)`` without ``y=`` is refused)."""
    wanted = [o.name for o in res.problem.sites.data if o.kind != "factor"]
    try:
        observed = npa.observed_names(model, args, kwargs, key)
    except Exception:  # noqa: BLE001 - the model's own error (``error``) is the one to report
        return
    missing = [n for n in wanted if n not in observed]
    if missing:
        labels = [o.label for o in res.problem.sites.data if o.name in missing]
        raise ValueError(
            f"observed site(s) {labels}: expected observed data with the new arguments, got none "
            "(a predictive check compares data simulated from the fit with observed data: pass "
            "them too, e.g. plot_ppc(res, X_new, y=y_new); for predictions without data use "
            "res.predictive(rng_key, X_new))"
        ) from error


@float64
def plot_ppc(
    res,
    *args,
    kind: str | None = None,
    path: str | os.PathLike | None = None,
    var_names: list[str] | None = None,
    num_samples: int = 500,
    uncertainty: bool = False,
    rng_key=None,
    **model_kwargs,
):
    r"""Predictive check of a fit: simulated data against the observed data.

    Parameters
    ----------
    res : MLEResult
        A fit from :func:`mleppl.fit_mle`.
    *args, **model_kwargs
        Data to check against (e.g. held-out ``X_test, y=y_test``); none: the
        data of the fit.
    kind : str, optional
        One of ``"dist"``, ``"ecdf"``, ``"pit"``, ``"dist_pit"``,
        ``"rootogram"``, ``"pava"``, ``"interval"``, ``"tstat"``. Default: by
        the observed site's data type, continuous → ``"dist_pit"`` (density
        and PIT ECDF), counts → ``"rootogram"``, binary / categorical /
        ordinal → ``"pava"``.
    path : str or path-like, optional
        Save the figure there (format from the suffix, e.g. PNG).
    var_names : list of str, optional
        Observed sites to check, by the model's names (``"y"`` also for a site with
        ``obs_mask``, which NumPyro traces as ``y_observed``; that name is accepted too).
        Default: all; a ``numpyro.factor`` is no data. Entries masked out by
        ``obs_mask`` or ``handlers.mask`` are left out of the check.
    num_samples : int
        Simulated data sets.
    uncertainty : bool
        False: simulate at :math:`\hat\theta` (plug-in, a parametric-bootstrap
        check). True: at :math:`\theta_s` from the asymptotic normal.
    rng_key : jax.random.PRNGKey or int, optional
        Randomness of the simulations (default key 0).

    Returns
    -------
    arviz_plots.PlotCollection
        Or, when the chosen sites need different kinds of check and ``kind``
        is None, a dict site → PlotCollection (``path`` then gets the site
        name appended to its stem).

    Raises
    ------
    ValueError
        Unknown ``kind`` or site, a kind that does not fit the data type
        (a rootogram of continuous data), data of another structure.

    Notes
    -----
    The simulated data are :math:`y^{rep}_s \sim p(y \mid x; \hat\theta)`; a
    well-specified likelihood makes the observed :math:`y` look like one more
    draw, and the PIT values :math:`\Pr(y^{rep}_i \le y_i)` uniform.

    Examples
    --------
    >>> import numpy as np, numpyro, numpyro.distributions as dist
    >>> from mleppl import fit_mle, plot_ppc
    >>> def model(y=None):
    ...     lam = numpyro.sample("lam", dist.Gamma(2.0, 1.0))
    ...     with numpyro.plate("obs", 30):
    ...         numpyro.sample("y", dist.Poisson(lam), obs=y)
    >>> res = fit_mle(model, y=np.random.default_rng(0).poisson(3.0, size=30))
    >>> pc = plot_ppc(res, num_samples=100)  # counts: a rootogram
    >>> type(pc).__name__
    'PlotCollection'
    """
    if kind is not None and kind not in _PLOTTERS:
        raise ValueError(f"kind: expected one of {KINDS} or None, got {kind!r}")
    if var_names is not None and (
        isinstance(var_names, str) or not all(isinstance(v, str) for v in var_names)
    ):
        raise TypeError(f"var_names: expected a list of site names, got {var_names!r}")
    key = as_rng_key(rng_key)
    k_bind, k_draw = jax.random.split(key)
    problem = _problem_for(res, args, model_kwargs, k_bind)
    data_kinds = {  # by the user's site name (``y``, not NumPyro's ``y_observed`` of obs_mask)
        o.label: "censored" if o.censoring is not None else o.kind
        for o in problem.sites.data
        if o.kind != "factor"
    }
    trace_names = {o.label: o.name for o in problem.sites.data if o.kind != "factor"}
    aliases = {v: k for k, v in trace_names.items()}  # the trace's name is accepted too
    names = list(data_kinds) if var_names is None else [aliases.get(n, n) for n in var_names]
    unknown = [n for n in names if n not in data_kinds]
    if unknown:
        raise ValueError(f"var_names: expected observed sites among {list(data_kinds)}, got {unknown}")
    for n in names:
        if kind in _REQUIRES and data_kinds[n] not in _REQUIRES[kind]:
            raise ValueError(
                f"kind={kind!r}: expected a site with {' or '.join(_REQUIRES[kind])} data, "
                f"got '{n}' with {data_kinds[n]} data (try kind='dist' or 'pit')"
            )
    dt = build_datatree(
        res,
        problem,
        num_samples=num_samples,
        rng_key=k_draw,
        uncertainty=uncertainty,
        log_likelihood=False,
        posterior_predictive=True,
        observed_names=tuple(trace_names[n] for n in names),
    )
    dt = _censor_replicates(dt, problem, names, jax.random.fold_in(k_draw, 1))
    dt = _as_counts(dt, [n for n in names if data_kinds[n] in _DISCRETE])
    dt = _flatten_observations(dt, names)
    chosen = {n: kind or DEFAULT_KIND[data_kinds[n]] for n in names}
    groups: dict[tuple, list[str]] = {}
    for n in names:  # one plot per (kind, pava data type)
        groups.setdefault((chosen[n], data_kinds[n] if chosen[n] == "pava" else None), []).append(n)
    plots = {}
    for (k, dtype), sites in groups.items():
        pc = _draw(dt, k, sites, dtype)
        plots[tuple(sites)] = pc
    if len(plots) == 1:
        pc = next(iter(plots.values()))
        if path is not None:
            _save(pc, Path(path))
        return pc
    out = {}
    for sites, pc in plots.items():
        for s in sites:
            out[s] = pc
        if path is not None:
            p = Path(path)
            _save(pc, p.with_name(f"{p.stem}_{'_'.join(sites)}{p.suffix}"))
    return out


def _as_counts(dt, names: list[str]):
    """Discrete data stored as floats (Poisson counts given as a float64 array) as integers, so
    ArviZ's discrete checks accept them; values that are not whole numbers are left alone."""
    if not names:
        return dt
    dt = dt.copy()
    for group in ("observed_data", "posterior_predictive"):
        ds = dt[group].to_dataset()
        for n in names:
            v = np.asarray(ds[n].values)
            if v.dtype.kind == "f" and np.all(np.isfinite(v)) and np.all(v == np.round(v)):
                ds[n] = ds[n].copy(data=v.astype(np.int64))
        dt[group] = ds
    return dt


@float64
def _censor_replicates(dt, problem, names: list[str], key):
    """Replicates of censored sites censored the way the data were.

    NumPyro's censored distributions simulate the uncensored times, which a check would
    compare with data that are partly censoring times: a correct model would look like a
    misfit. Each replicate is censored at the observation's censoring time: its own value
    where it was censored; for an observed event the censoring time is unknown but beyond
    the event, and is drawn from the reverse Kaplan–Meier estimate of the censoring
    distribution given that (see :func:`censoring_times`; with censoring at the end of
    follow-up, as in most studies, this is the end of follow-up). Left censoring mirrors this.
    """
    sites = {o.label: o for o in problem.sites.data if o.label in names and o.censoring is not None}
    if not sites:
        return dt
    dt = dt.copy()
    pp = dt["posterior_predictive"].to_dataset()
    for i, (name, o) in enumerate(sites.items()):
        side, flag = o.censoring
        y = np.asarray(dt["observed_data"][name].values, dtype=np.float64)
        flag = flag if o.mask is None else flag.reshape(-1)[np.flatnonzero(o.mask.ravel())]
        flag = np.broadcast_to(flag.reshape(flag.shape + (1,) * (y.ndim - flag.ndim)), y.shape)
        rep = np.asarray(pp[name].values, dtype=np.float64)  # (chain, draw, *y.shape)
        u = np.asarray(jax.random.uniform(jax.random.fold_in(key, i), rep.shape, dtype=np.float64))
        sign = 1.0 if side == "right" else -1.0
        c = sign * censoring_times(sign * y.ravel(), flag.ravel(), u.reshape(-1, y.size)).reshape(rep.shape)
        pp[name] = pp[name].copy(data=np.minimum(rep, c) if side == "right" else np.maximum(rep, c))
    dt["posterior_predictive"] = pp
    return dt


def censoring_times(y: np.ndarray, censored: np.ndarray, u: np.ndarray) -> np.ndarray:
    r"""Right-censoring times for replicates of right-censored data ``y``: ``(S, n)``.

    ``y_i`` where ``censored``; elsewhere (an event at :math:`y_i`, censoring time unknown,
    :math:`C_i \ge y_i`) a draw from the reverse Kaplan–Meier estimate :math:`\hat G` of the
    censoring distribution (the censored values are its events) conditional on
    :math:`C \ge y_i`. The mass :math:`\hat G` leaves beyond the last censoring time goes to
    the end of follow-up, the largest observed value (no data show what lies beyond it);
    without any censored value nothing is censored. ``u``: uniforms ``(S, n)`` (inverse-CDF
    draws).
    """
    y, censored = np.asarray(y, np.float64), np.asarray(censored, bool)
    out = np.broadcast_to(y, u.shape).copy()
    events = ~censored
    if not events.any():
        return out
    times = np.unique(y[censored])
    if times.size == 0:
        out[:, events] = np.inf
        return out
    at_risk = np.sum(y[None, :] >= times[:, None], axis=1)
    lost = np.sum(y[censored][None, :] == times[:, None], axis=1)
    g = np.cumprod(1.0 - lost / at_risk)  # P(C > t_k)
    cm = 1.0 - g  # P(C ≤ t_k)
    k0 = np.searchsorted(times, y[events], side="left")  # first censoring time ≥ the event
    before = np.where(k0 > 0, cm[np.maximum(k0 - 1, 0)], 0.0)  # P(C < y_i)
    target = before + u[:, events] * (1.0 - before)
    idx = np.searchsorted(cm, target, side="left")
    out[:, events] = np.where(idx < times.size, times[np.minimum(idx, times.size - 1)], y.max())
    return out


def _flatten_observations(dt, names: list[str]):
    """One dim per site: the observations of vector (``to_event``) sites laid end to end.

    ArviZ 1.3's PIT checks accept a single observation dim only.
    """
    import xarray as xr

    obs, pp = dt["observed_data"].to_dataset(), dt["posterior_predictive"].to_dataset()
    if all(obs[n].ndim <= 1 for n in names):
        return dt
    new_obs, new_pp = {}, {}
    for n in names:
        o, p = obs[n], pp[n]
        if o.ndim <= 1:
            new_obs[n], new_pp[n] = o, p
            continue
        dim = f"{n}_flat"
        new_obs[n] = xr.DataArray(o.values.reshape(-1), dims=(dim,))
        new_pp[n] = xr.DataArray(p.values.reshape(p.shape[:2] + (-1,)), dims=("chain", "draw", dim))
    dt = dt.copy()
    dt["observed_data"] = xr.Dataset(new_obs)
    dt["posterior_predictive"] = xr.Dataset(new_pp)
    return dt


def _draw(dt, kind: str, sites: list[str], data_type: str | None):
    fname, fixed = _PLOTTERS[kind]
    options = dict(fixed)
    if kind == "pava":
        options["data_type"] = data_type
        # one panel per category (cumulative for ordinal data): titles clear the row above
        options["figure_kwargs"] = {"layout": "constrained"}
    if kind == "dist_pit" and len(sites) > 1:  # one row per site; ArviZ's default squeezes the rows
        options["figure_kwargs"] = {"figsize": (10.0, 3.4 * len(sites))}
    return plot_ppc_check(dt, fname, sites, options)


def _save(pc, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pc.savefig(str(path), dpi=100, bbox_inches="tight")
