"""Profile-likelihood confidence intervals, all endpoints in one batched program.

For each profiled coordinate :math:`z_j` and each side, a safeguarded Newton
iteration finds where the signed root of the likelihood-ratio statistic,

.. math:: r(t) = \\operatorname{sign}(t - \\hat z_j)\\sqrt{2\\,[\\ell_p(t) - \\ell(\\hat z)]},
   \\qquad \\ell_p(t) = \\min_{z_{-j}} \\ell(z)\\big|_{z_j = t},

crosses :math:`\\pm z_{(1+\\text{level})/2}`. The envelope theorem gives
:math:`\\ell_p'(t) = \\partial_j \\ell` at the inner optimum, so each Newton step
costs one inner fit, warm-started from the previous one shifted along the
optimum's first-order path :math:`-H_{-j,-j}^{-1} H_{-j,j}`. All ``2p``
searches run together under ``jax.vmap``. Because profile intervals are
invariant to reparametrization, an interval for ``z_j`` maps to one for
``θ_j`` through the site's (elementwise, monotone) bijection.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..core import cache
from ..core.stats import check_level, normal_quantile
from ..core.status import Status, succeeded
from ..core.warnings import BoundaryWarning, MLEWarning
from ..solvers.minimize import minimize

__all__ = ["profile_conf_int", "profile_endpoints"]

OK, OPEN, FAILED, BETTER = Status.CONVERGED, Status.OPEN, Status.INNER_FAILED, Status.BETTER_OPTIMUM
_MAX_OUTER = 60
_RHO_TOL = 1e-7  # on the signed root (standard-normal units): endpoint error ≈ 1e-7 se


class ProfileState(NamedTuple):
    """Loop state of one endpoint search: the distance ``u`` from ẑ_j, its bracket, the
    inner optimum and its first-order path, and the status."""

    u: jax.Array
    lo: jax.Array
    hi: jax.Array
    zr: jax.Array
    slope: jax.Array
    u_last: jax.Array
    it: jax.Array
    status: jax.Array


def _program(pr):
    return cache.get_or_build((*pr.structure_key, "profile"), lambda: _build(pr))


def _build(pr):
    pr = pr.static()
    p = pr.layout.size

    def search(j, side, zhat, se_j, c, u_max, leaves):
        nll = lambda z: pr.negloglik(z, leaves)
        f_hat = nll(zhat)
        others = jnp.arange(p - 1)
        others = jnp.where(others < j, others, others + 1)

        def full(zr, t):
            return zhat.at[others].set(zr).at[j].set(t)

        def inner(t, zr0):
            if p == 1:
                f = nll(full(zr0, t))
                return zr0, f, jax.grad(nll)(full(zr0, t))[j], jnp.zeros((0,)), jnp.isfinite(f)
            opt = minimize(
                lambda zr: nll(full(zr, t)), zr0, method="newton", scale=1.0, max_steps=50, tol=1e-12
            )
            g = jax.grad(nll)(full(opt.z, t))
            # first-order path of the inner optimum: dz_{-j}/dt = −H_rr⁻¹ H_rj
            h_rj = jax.jvp(lambda tt: jax.grad(nll)(full(opt.z, tt))[others], (t,), (jnp.ones_like(t),))[1]
            slope = -jnp.linalg.solve(opt.hess, h_rj)
            return opt.z, opt.value, g[j], slope, succeeded(opt.status)

        zr_hat = zhat[others]
        u0 = jnp.where(jnp.isfinite(se_j) & (se_j > 0), c * se_j, 1.0)
        _, _, _, slope0, _ = inner(zhat[j], zr_hat)
        state = ProfileState(
            u=u0, lo=jnp.zeros(()), hi=jnp.asarray(jnp.inf), zr=zr_hat, slope=slope0, u_last=jnp.zeros(()),
            it=jnp.zeros((), jnp.int32), status=jnp.asarray(Status.RUNNING, jnp.int32),
        )  # fmt: skip

        def body(s: ProfileState) -> ProfileState:
            u = s.u
            t = zhat[j] + side * u
            zr0 = s.zr + s.slope * (side * (u - s.u_last))
            zr, f, g_j, slope, ok = inner(t, zr0)
            d = f - f_hat
            rho = jnp.sqrt(jnp.maximum(2.0 * d, 0.0))
            drho = side * g_j / jnp.where(rho > 0, rho, 1.0)
            lo = jnp.where(rho < c, u, s.lo)
            hi = jnp.where(rho < c, s.hi, u)
            newton = u + (c - rho) / drho
            good = jnp.isfinite(newton) & (drho > 0) & (newton > lo) & (newton < hi)
            fallback = jnp.where(jnp.isfinite(hi), 0.5 * (lo + hi), 4.0 * u)
            u_new = jnp.where(good, newton, fallback)
            u_new = jnp.where(jnp.isfinite(hi), u_new, jnp.minimum(u_new, 4.0 * u))
            it = s.it + 1
            status = jnp.where(
                ~ok | ~jnp.isfinite(f),
                FAILED,
                jnp.where(
                    d < -1e-9 * (1.0 + jnp.abs(f_hat)),
                    BETTER,
                    jnp.where(
                        jnp.abs(rho - c) <= _RHO_TOL,
                        OK,
                        jnp.where(
                            (rho < c) & (u >= u_max),
                            OPEN,
                            jnp.where(it >= _MAX_OUTER, FAILED, Status.RUNNING),
                        ),
                    ),
                ),
            )
            u_new = jnp.where(
                status == Status.RUNNING, jnp.minimum(u_new, jnp.where(u < u_max, u_max, u_new)), u
            )
            return ProfileState(u_new, lo, hi, zr, slope, u, it, status.astype(jnp.int32))

        s = jax.lax.while_loop(lambda s: s.status < 0, body, state)
        t = zhat[j] + side * s.u
        t = jnp.where(s.status == OPEN, side * jnp.inf, jnp.where(s.status == OK, t, jnp.nan))
        return t, s.status, s.it

    return cache.jit(
        jax.vmap(search, in_axes=(0, 0, None, 0, None, 0, None)), hoist=pr.constants, name="profile"
    )


def profile_endpoints(rec, level: float, coords: np.ndarray):
    """Unconstrained endpoints ``(lower, upper, status_lower, status_upper, iterations)``."""
    pr = rec.problem
    q = normal_quantile(0.5 + level / 2.0)
    se_z = np.sqrt(np.abs(np.diag(np.asarray(rec.cov_z))))
    js = np.repeat(coords, 2)
    sides = np.tile([-1.0, 1.0], len(coords))
    se = se_z[js]
    u_max = np.where(np.isfinite(se), 30.0 + 100.0 * se, 30.0)
    t, status, its = jax.device_get(
        _program(pr)(
            jnp.asarray(js, jnp.int32),
            jnp.asarray(sides),
            jnp.asarray(rec.z),
            jnp.asarray(np.where(np.isfinite(se), se, np.nan)),
            jnp.asarray(q),
            jnp.asarray(u_max),
            pr.data,
        )
    )
    t, status = np.asarray(t).reshape(-1, 2), np.asarray(status).reshape(-1, 2)
    return t[:, 0], t[:, 1], status[:, 0], status[:, 1], np.asarray(its)


def profile_conf_int(rec, *, level: float = 0.95) -> pd.DataFrame:
    r"""Profile-likelihood confidence intervals for every parameter.

    Parameters
    ----------
    rec : FitRecord
        A converged fit.
    level : float
        Confidence level in (0, 1).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``param_names``, columns ``lower``, ``upper`` on the
        constrained scale.

    Warns
    -----
    BoundaryWarning
        An interval is open on one side (the likelihood does not drop by
        :math:`\chi^2_{1}(\text{level})/2` before the parameter reaches the
        boundary of its support or infinity): that endpoint is the boundary
        (e.g. 0 for a scale) or ±inf.
    MLEWarning
        An endpoint could not be found (an inner fit failed, or a better
        optimum than the fit's was found): it is NaN. Also for sites whose
        bijection is not elementwise (simplex, Cholesky factors), whose rows
        are NaN.

    Notes
    -----
    The interval is :math:`\{\theta_j : 2[\ell_p(\theta_j) - \ell(\hat\theta)] \le
    \chi^2_{1}(\text{level})\}` with :math:`\ell_p` the negative log-likelihood
    minimized over the other parameters; each endpoint is found to
    :math:`|r - z_{(1+\text{level})/2}| \le 10^{-7}`.

    Examples
    --------
    >>> import numpy as np, numpyro, numpyro.distributions as dist
    >>> from mleppl import fit_mle
    >>> def model(y=None):
    ...     rate = numpyro.sample("rate", dist.Exponential(1.0))
    ...     with numpyro.plate("n", y.shape[0]):
    ...         numpyro.sample("y", dist.Exponential(rate), obs=y)
    >>> res = fit_mle(model, y=np.array([0.2, 0.5, 1.0, 1.5, 2.8]))
    >>> ci = res.conf_int(method="profile")
    >>> bool(0 < ci.loc["rate", "lower"] < res.params["rate"] < ci.loc["rate", "upper"])
    True
    """
    level = check_level(level)
    names = list(rec.param_names)
    k = len(names)
    zidx = rec.problem.layout.elementwise_coords()
    lower, upper = np.full(k, np.nan), np.full(k, np.nan)
    rows = np.flatnonzero(zidx >= 0)
    coords = zidx[rows]
    if (zidx < 0).any():
        skipped = [n for n, e in zip(names, zidx) if e < 0]
        warnings.warn(
            f"profile intervals need an elementwise bijection; parameters {skipped} "
            "(simplex/matrix sites) get NaN",
            MLEWarning,
            stacklevel=3,
        )
    if coords.size:
        lo_z, hi_z, st_lo, st_hi, _ = profile_endpoints(rec, level, coords)
        layout = rec.problem.layout
        z_lo, z_hi = np.asarray(rec.z, dtype=np.float64).copy(), np.asarray(rec.z, dtype=np.float64).copy()
        z_lo[coords], z_hi[coords] = lo_z, hi_z
        a = np.asarray(layout.theta(jnp.asarray(z_lo)), dtype=np.float64)[rows]
        b = np.asarray(layout.theta(jnp.asarray(z_hi)), dtype=np.float64)[rows]
        a = np.where(np.isnan(lo_z), np.nan, a)
        b = np.where(np.isnan(hi_z), np.nan, b)
        lower[rows] = np.fmin(a, b)
        upper[rows] = np.fmax(a, b)
        # an interval must bracket the estimate; one that does not was computed around
        # another point (the fit was not at the optimum): report it as not found
        est = np.asarray(rec.estimate, dtype=np.float64)
        slack = 1e-9 * (1.0 + np.abs(est))
        astray = ~((lower <= est + slack) & (upper >= est - slack)) & ~(np.isnan(lower) & np.isnan(upper))
        if astray.any():
            lower[astray] = upper[astray] = np.nan
            warnings.warn(
                f"profile interval of {[names[i] for i in np.flatnonzero(astray)]} does not bracket the "
                "estimate (NaN): the fit is not at the maximum of the likelihood; refit (e.g. n_starts=)",
                MLEWarning,
                stacklevel=3,
            )
        open_ = [names[r] for r, s1, s2 in zip(rows, st_lo, st_hi) if OPEN in (s1, s2)]
        failed = [names[r] for r, s1, s2 in zip(rows, st_lo, st_hi) if {s1, s2} & {FAILED, BETTER}]
        if open_:
            warnings.warn(
                f"profile interval open on one side for {open_}: the likelihood stays within the "
                "cut-off up to the boundary of the support (or infinity); that endpoint is the boundary",
                BoundaryWarning,
                stacklevel=3,
            )
        if failed:
            better = any(BETTER in (s1, s2) for s1, s2 in zip(st_lo, st_hi))
            warnings.warn(
                f"profile endpoint not found for {failed} (NaN): "
                + (
                    "a higher likelihood than the fit's was found; refit" if better else "an inner fit failed"
                ),
                MLEWarning,
                stacklevel=3,
            )
    return pd.DataFrame({"lower": lower, "upper": upper}, index=pd.Index(names, name="parameter"))
