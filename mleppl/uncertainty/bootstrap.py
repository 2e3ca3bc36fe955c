"""Nonparametric and parametric bootstrap of a fitted result, refits batched with vmap.

Every refit starts at the estimate :math:`\\hat z` and iterates the chord
(simplified Newton) method with the observed information of the original
fit, :math:`z \\leftarrow z - H^{-1} \\nabla \\ell_b(z)`: one gradient per
step and no Hessian at all. A resampled likelihood differs from the original
by :math:`O(n^{-1/2})`, so its Hessian does too and each step shrinks the error
by that factor (3-5 steps for n in the thousands). Refits that do not reach
the tolerance (tiny samples, near-separation) are handed to the trust-region
Newton optimizer of :func:`mleppl.fit_mle`; those that fail there too are
counted in ``n_failed`` and their draws are NaN.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
import warnings
from collections.abc import Mapping
from statistics import NormalDist
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..adapters import numpyro as npa
from ..core import cache, hostview
from ..core.options import positive_int
from ..core.records import FitRecord, frozen_array, frozen_dict
from ..core.stats import check_level
from ..core.status import succeeded
from ..core.warnings import MLEWarning
from ..core.x64 import float64
from ..model.inputs import as_rng_key
from ..model.units import observation_units, unit_loglik, unit_problem, unit_weights
from ..solvers.minimize import minimize
from .robust import scores

__all__ = ["BootstrapResult", "bootstrap", "bootstrap_conf_int", "KINDS", "INTERVALS"]

KINDS = ("nonparametric", "parametric")
INTERVALS = ("percentile", "bca")
# λ²/2 in log-likelihood units: each draw is within √(2·1e-10) ≈ 1.4e-5 standard errors of its
# optimum, far below the Monte-Carlo error of any bootstrap summary (≈ 1/√(2B) relative).
_TOL = 1e-10
CHORD_STEPS = 50
_N = NormalDist()


@dataclasses.dataclass(frozen=True, eq=False)
class BootstrapResult:
    """Bootstrap refits of a maximum-likelihood fit.

    Attributes
    ----------
    draws : Mapping[str, ndarray]
        Constrained estimate of each free site per refit, shape
        ``(n_boot, *site shape)``; NaN for failed refits.
    n_failed : int
        Refits that did not converge (also with the fallback optimizer).
    kind : str
        ``"nonparametric"`` or ``"parametric"``.
    flat : ndarray
        ``(n_boot, k)`` draws flattened over ``param_names``.
    converged : ndarray
        ``(n_boot,)`` bool.
    """

    draws: Mapping[str, np.ndarray]
    n_failed: int
    kind: str
    flat: np.ndarray
    converged: np.ndarray
    param_names: list
    estimate: np.ndarray
    acceleration: np.ndarray  # BCa acceleration per parameter (NaN if unavailable)

    @property
    def n_boot(self) -> int:
        return int(self.flat.shape[0])

    def se(self) -> np.ndarray:
        """Bootstrap standard deviation of each parameter over the converged refits."""
        return np.nanstd(self.flat, axis=0, ddof=1)

    def conf_int(self, level: float = 0.95, *, interval: str = "percentile") -> pd.DataFrame:
        r"""Bootstrap confidence intervals.

        Parameters
        ----------
        level : float
            Confidence level in (0, 1).
        interval : {"percentile", "bca"}
            ``"percentile"``: the :math:`\alpha/2` and :math:`1-\alpha/2`
            quantiles of the draws. ``"bca"``: Efron's bias-corrected and
            accelerated interval.

        Returns
        -------
        pandas.DataFrame
            Indexed by ``param_names``, columns ``lower``, ``upper``.

        Notes
        -----
        BCa uses the quantiles :math:`\Phi\big(z_0 + \frac{z_0 + z_\alpha}{1 - a(z_0 + z_\alpha)}\big)`
        with bias :math:`z_0 = \Phi^{-1}(\#\{\theta^* < \hat\theta\}/B)` and acceleration
        :math:`a = \sum_i U_i^3 / (6 (\sum_i U_i^2)^{3/2})` from the empirical
        influence values :math:`U_i = (J H^{-1} s_i)` of the observation units
        (the infinitesimal jackknife).
        """
        level = check_level(level)
        if interval not in INTERVALS:
            raise ValueError(f"interval: expected one of {INTERVALS}, got {interval!r}")
        alpha = 1.0 - level
        k = self.flat.shape[1]
        lo, hi = np.full(k, np.nan), np.full(k, np.nan)
        for j in range(k):
            x = self.flat[:, j]
            x = x[np.isfinite(x)]
            if x.size < 2:
                continue
            if interval == "percentile":
                q = (alpha / 2, 1 - alpha / 2)
            else:
                a = float(self.acceleration[j])
                frac = (np.sum(x < self.estimate[j]) + 0.5 * np.sum(x == self.estimate[j])) / x.size
                frac = min(max(frac, 0.5 / x.size), 1 - 0.5 / x.size)
                z0 = _N.inv_cdf(frac)
                q = []
                for za in (_N.inv_cdf(alpha / 2), _N.inv_cdf(1 - alpha / 2)):
                    w = z0 + za
                    q.append(_N.cdf(z0 + w / (1 - a * w)) if np.isfinite(a) else math.nan)
            if np.all(np.isfinite(q)):
                lo[j], hi[j] = np.quantile(x, q[0]), np.quantile(x, q[1])
        return pd.DataFrame(
            {"lower": lo, "upper": hi}, index=pd.Index(list(self.param_names), name="parameter")
        )


class ChordState(NamedTuple):
    z: jax.Array
    g: jax.Array  # gradient of the resampled objective at z
    dec: jax.Array  # ½ gᵀH⁻¹g with the original fit's H
    k: jax.Array
    finite: jax.Array


def chord_program(pr, kind: str):
    """Compiled batch of chord-Newton refits: (data per refit) -> (z, converged)."""
    return cache.get_or_build((*pr.structure_key, "bootstrap-chord", kind), lambda: _build_chord(pr, kind))


def _build_chord(pr, kind: str):
    objective = _objective(pr, kind)

    def one(sample, g0, zhat, h_chol, data):
        grad = jax.grad(lambda z: objective(z, sample, data))

        def solve(g):
            return jax.scipy.linalg.cho_solve((h_chol, True), g)

        def body(s: ChordState) -> ChordState:
            z_new = s.z - solve(s.g)
            g_new = grad(z_new)
            dec = 0.5 * jnp.dot(g_new, solve(g_new))
            ok = jnp.all(jnp.isfinite(z_new)) & jnp.isfinite(dec)
            return ChordState(
                jnp.where(ok, z_new, s.z), jnp.where(ok, g_new, s.g), jnp.where(ok, dec, jnp.inf), s.k + 1, ok
            )

        s0 = ChordState(zhat, g0, 0.5 * jnp.dot(g0, solve(g0)), jnp.zeros((), jnp.int32), jnp.asarray(True))
        s = jax.lax.while_loop(
            lambda s: s.finite & (s.dec > _TOL) & (s.k < CHORD_STEPS) & jnp.isfinite(s.dec), body, s0
        )
        return s.z, s.dec <= _TOL

    return cache.jit(
        jax.vmap(one, in_axes=(0, 0, None, None, None)), hoist=pr.constants, name="bootstrap_refit"
    )


def _grad0_program(pr, kind: str):
    """Compiled batch of gradients at the estimate (parametric refits)."""

    def build():
        objective = _objective(pr, kind)
        return cache.jit(
            jax.vmap(jax.grad(objective), in_axes=(None, 0, None)), hoist=pr.constants, name="bootstrap_grad"
        )

    return cache.get_or_build((*pr.structure_key, "bootstrap-grad0", kind), build)


def _fallback_program(pr, kind: str):
    def build():
        objective = _objective(pr, kind)

        def one(sample, zhat, data):
            opt = minimize(
                lambda z: objective(z, sample, data),
                zhat,
                method="newton",
                scale=1.0,
                max_steps=None,
                tol=1e-12,
            )
            return opt.z, succeeded(opt.status)

        return cache.jit(
            jax.vmap(one, in_axes=(0, None, None)), hoist=pr.constants, name="bootstrap_simulate"
        )

    return cache.get_or_build((*pr.structure_key, "bootstrap-fallback", kind), build)


def _objective(pr, kind: str):
    if kind == "nonparametric":
        spec = observation_units(pr)
        pr = pr.static()
        return lambda z, w, data: -jnp.sum(unit_loglik(pr, spec, z, data, w))
    pr = pr.static()
    model = pr.require_model()

    def nll(z, ystar, data):
        # the same objective (marginal too: random effects and discrete latents integrated
        # out) with the simulated data at the observed sites
        return pr._replace(model=npa.replace_observed(model, ystar)).negloglik(z, data)

    return nll


@functools.partial(jax.jit, static_argnames=("n_units", "size"))
def _resample_weights(key, idx: jax.Array, scores: jax.Array, *, n_units: int, size: int):
    """Multinomial(m, 1/m) counts over the m eligible units ``idx`` (zeros elsewhere), and
    the resampled negative log-likelihood's gradient at the estimate, ``−w·S``."""
    m = idx.shape[0]
    draws = jax.random.randint(key, (size, m), 0, m)
    flat = (draws + m * jnp.arange(size)[:, None]).ravel()  # one scatter-add: 2× vmapped bincount
    counts = jnp.zeros(size * m).at[flat].add(1.0).reshape(size, m)
    w = jnp.zeros((size, n_units)).at[:, idx].set(counts)
    return w, -(w @ scores)


def _simulate(rec, key, size: int) -> dict:
    pr = rec.problem
    args, kwargs = pr.rebuild(pr.data)
    params = {k: jnp.asarray(v) for k, v in rec.params.items()}
    sims = npa.simulate_observed(pr.prior_free_model, args, kwargs, params, pr.sites.observed, key, size)
    dtypes = {o.name: o.value.dtype for o in pr.sites.data}
    return {name: jnp.asarray(sims[name]).astype(dtypes[name]) for name in sims}


def _acceleration(rec, pr) -> np.ndarray:
    try:
        s = scores(pr, rec.z)
    except ValueError:
        return np.full(len(rec.param_names), np.nan)
    a = np.where(np.isfinite(rec.cov_z), rec.cov_z, 0.0) @ np.asarray(rec.jacobian).T

    def moments(xp, s, a):
        u = s @ a  # (units, k): J H⁻¹ s_i
        return xp.sum(u**3, axis=0), xp.sum(u**2, axis=0)

    if hostview.is_global(s):  # units on several processes: the sums are reduced where they are
        m3, m2 = hostview.on_devices(lambda s, a: moments(jnp, s, a), s, jnp.asarray(a))
    else:
        m3, m2 = moments(np, s, a)
    with np.errstate(divide="ignore", invalid="ignore"):
        return m3 / (6.0 * m2**1.5)


def _check(rec, n_boot, kind, chunk_size):
    if not isinstance(rec, FitRecord) or rec.problem is None:
        raise TypeError(f"res: expected an MLEResult from mleppl.fit_mle, got {type(rec).__name__}")
    positive_int("n_boot", n_boot)
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    positive_int("chunk_size", chunk_size, none_ok=True)
    if not np.all(np.isfinite(np.asarray(rec.hessian))):
        raise ValueError("res: expected a finite observed information at the estimate, got NaN/inf")


@float64
def bootstrap(
    rec,
    n_boot: int = 1000,
    *,
    kind: str = "nonparametric",
    rng_key=None,
    chunk_size: int | None = None,
    progress: bool = False,
) -> BootstrapResult:
    r"""Bootstrap a maximum-likelihood fit: resample or simulate, refit, collect.

    Parameters
    ----------
    rec : MLEResult
        The fit to bootstrap.
    n_boot : int
        Number of refits.
    kind : {"nonparametric", "parametric"}
        ``"nonparametric"``: resample observation units (the elements of the
        observation plate, see :meth:`MLEResult.with_cov`) with replacement,
        as multinomial weights on their log-likelihood terms. In a marginal
        fit with random effects over groups the units are the groups (the
        cluster bootstrap: whole groups resampled, weights on their marginal
        log-likelihoods :math:`\log L_g`).
        ``"parametric"``: simulate every observed site from the fitted model
        with NumPyro's ``Predictive`` at :math:`\hat\theta` and refit.
    rng_key : jax.random.PRNGKey or int, optional
        Randomness (default key 0: reproducible).
    chunk_size : int, optional
        Refits per vmapped batch (default: about 3.2·10⁵ / units, in [16, 1000]).
    progress : bool
        Print progress to stderr after each batch.

    Returns
    -------
    BootstrapResult
        ``draws`` (site → ``(n_boot, …)``), ``n_failed``, ``conf_int(...)``.

    Raises
    ------
    ValueError
        Bad options, or (nonparametric) a model without an observation plate,
        with crossed random effects or with discrete latents summed out.

    Warns
    -----
    MLEWarning
        Some refits failed; their draws are NaN and ``n_failed`` counts them.

    Notes
    -----
    Refit :math:`b` maximizes :math:`\sum_i w_{bi} \log L_i(z)` with
    :math:`w_b \sim \mathrm{Multinomial}(n, 1/n)` (nonparametric), or the
    likelihood of :math:`y^*_b \sim p(y \mid \hat\theta)` (parametric),
    starting at :math:`\hat z` with chord-Newton steps
    :math:`z \leftarrow z - H^{-1}\nabla\ell_b(z)` until
    :math:`\tfrac12 \nabla\ell_b^\top H^{-1} \nabla\ell_b \le 10^{-10}` (each draw is within
    about 1.4·10⁻⁵ standard errors of its optimum).
    The parametric bootstrap replaces the data at the observed sites only:
    a model that transforms its data before the observed site is simulated
    correctly but refit with the original transformed values.

    Examples
    --------
    >>> import numpy as np, numpyro, numpyro.distributions as dist
    >>> import mleppl
    >>> def model(y=None):
    ...     mu = numpyro.sample("mu", dist.Normal(0, 10))
    ...     with numpyro.plate("n", y.shape[0]):
    ...         numpyro.sample("y", dist.Normal(mu, 1), obs=y)
    >>> res = mleppl.fit_mle(model, y=np.random.default_rng(0).normal(size=50))
    >>> boot = mleppl.bootstrap(res, 200, rng_key=1)
    >>> boot.draws["mu"].shape, boot.n_failed
    ((200,), 0)
    >>> bool(abs(boot.se()[0] - 1 / np.sqrt(50)) < 0.03)
    True
    """
    _check(rec, n_boot, kind, chunk_size)
    # units to resample: for a marginal fit the groups (discrete latents, crossed effects refused)
    pr = unit_problem(rec.problem, rec.z) if kind == "nonparametric" else rec.problem
    key = as_rng_key(rng_key)
    data = pr.data
    zhat = jnp.asarray(rec.z)
    h = np.asarray(rec.hessian)
    try:
        h_chol = jnp.asarray(np.linalg.cholesky(0.5 * (h + h.T)))
    except np.linalg.LinAlgError:
        raise ValueError(
            "res: expected a positive-definite observed information at the estimate (see HessianWarning)"
        ) from None
    if kind == "nonparametric":
        spec = observation_units(pr)
        elig_idx = jnp.asarray(np.flatnonzero(unit_weights(pr, spec) != 0))
        s_hat = jnp.asarray(scores(pr, rec.z))  # per-unit scores at the estimate: g0 = −w·S
        n_units = spec.size
    else:
        n_units = max(pr.nobs, 1)
    # ~32 refits of 10⁴ units per batch keeps the batched arrays in cache (measured best)
    chunk = min(chunk_size or int(min(1000, max(16, 3.2e5 // max(n_units, 1)))), n_boot)
    chord, fallback = chord_program(pr, kind), _fallback_program(pr, kind)
    grad0 = _grad0_program(pr, kind) if kind == "parametric" else None
    zs, oks = [], []
    for c, start in enumerate(range(0, n_boot, chunk)):
        sub = jax.random.fold_in(key, c)
        if kind == "nonparametric":
            sample, g0 = _resample_weights(sub, elig_idx, s_hat, n_units=n_units, size=chunk)
        else:
            sample = _simulate(rec, sub, chunk)
            g0 = grad0(zhat, sample, data)
        z, ok = chord(sample, g0, zhat, h_chol, data)
        ok, z = np.array(ok), np.array(z)
        bad = np.flatnonzero(~ok)
        if bad.size:
            pad = max(8, 1 << int(math.ceil(math.log2(bad.size))))  # few distinct shapes to compile
            sel = np.resize(bad, pad)
            zf, okf = fallback(jax.tree_util.tree_map(lambda a, s=sel: a[s], sample), zhat, data)
            z[bad], ok[bad] = np.asarray(zf)[: bad.size], np.asarray(okf)[: bad.size]
        take = min(chunk, n_boot - start)
        zs.append(z[:take])
        oks.append(ok[:take])
        if progress:
            print(f"\rbootstrap: {start + take}/{n_boot} refits", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    z_all, ok_all = np.concatenate(zs), np.concatenate(oks)
    layout = pr.layout
    flat = np.asarray(jax.vmap(layout.theta)(jnp.asarray(z_all)), dtype=np.float64)
    flat = np.where(ok_all[:, None], flat, np.nan)
    n_failed = int(np.count_nonzero(~ok_all))
    if n_failed:
        warnings.warn(
            f"bootstrap: {n_failed} of {n_boot} refits did not converge; their draws are NaN",
            MLEWarning,
            stacklevel=3,
        )
    # parameters the diagnosis ruled out (running to infinity or a boundary) have no
    # sampling distribution to estimate: their draws are NaN, as their standard errors
    invalid_theta = (
        np.asarray(
            [
                bool(np.any(np.asarray(rec.jacobian)[i][np.asarray(rec.invalid)] != 0))
                for i in range(flat.shape[1])
            ]
        )
        if np.any(rec.invalid)
        else np.zeros(flat.shape[1], bool)
    )
    if invalid_theta.any():
        flat[:, invalid_theta] = np.nan
        warnings.warn(
            f"bootstrap: {[n for n, b in zip(rec.param_names, invalid_theta) if b]} have no finite "
            "estimate (see res.issues); their draws are NaN",
            MLEWarning,
            stacklevel=3,
        )
    draws = {name: frozen_array(v) for name, v in layout.split(flat, batch=1).items()}
    return BootstrapResult(
        draws=frozen_dict(draws),
        n_failed=n_failed,
        kind=kind,
        flat=frozen_array(flat),
        converged=frozen_array(ok_all),
        param_names=list(rec.param_names),
        estimate=frozen_array(rec.estimate),
        acceleration=frozen_array(_acceleration(rec, pr)),
    )


def bootstrap_conf_int(
    rec, *, level: float = 0.95, boot: BootstrapResult | None = None, interval: str = "percentile", **options
) -> pd.DataFrame:
    """``res.conf_int(method="bootstrap")``: from ``boot`` or from a new :func:`bootstrap` run."""
    if boot is None:
        boot = bootstrap(rec, options.pop("n_boot", 1000), **options)
    elif options:
        raise TypeError(f"conf_int(method='bootstrap', boot=...): unexpected options {sorted(options)}")
    if not isinstance(boot, BootstrapResult):
        raise TypeError(f"boot: expected a BootstrapResult from mleppl.bootstrap, got {type(boot).__name__}")
    if list(boot.param_names) != list(rec.param_names):
        raise ValueError("boot: expected a bootstrap of this fit (its parameter names differ)")
    return boot.conf_int(level, interval=interval)
