"""A fit whose exact Hessian is NaN where the log-likelihood and its gradient are finite.

Automatic differentiation can give NaN at second order where the value and the first
derivative are exact: a branch that is right in value but not in its derivatives, e.g. an
enumerated zero-inflated Poisson written ``Poisson(jnp.where(z == 1, 0.0, mu))``, whose
log-density at ``y > 0`` is ``−inf`` on the zero branch (its derivatives there are
``inf · 0``). The trust-region Newton method stops at its start on such a Hessian
(``NOT_POSITIVE_DEFINITE``, and the diagnosis then read the start as a boundary). Here the
fit is finished by L-BFGS (gradients only), the observed information is taken from central
differences of the exact gradient, the convergence test is the Newton decrement under it,
and a :class:`~mleppl.PrecisionWarning` names the observed site whose log-density's second
derivatives are NaN. Written by hand: no library differentiates a JAX gradient by finite
differences inside one compiled program.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from ..core import cache
from ..core.status import Status
from ..core.warnings import PrecisionWarning
from ..solvers.linalg import decrement, eig_scaled
from .buckets import padded
from .program import fit_program
from .starts import start

__all__ = ["rescue", "fd_hessian"]

# Central differences with steps eps^(1/3)·max(1, |z|): truncation and rounding errors both
# ~ eps^(2/3) ≈ 4e-11 relative to the curvature's scale (measured on a Poisson GLM: the
# standard errors agree with those of the exact Hessian to 2e-8).
FD_STEP = float(np.finfo(np.float64).eps) ** (1.0 / 3.0)
# The decrement under a finite-difference Hessian is judged at this tolerance (its own
# accuracy, not the exact Newton method's 1e-12).
FD_TOL = 1e-8


def fd_hessian(problem):
    """Compiled ``(z, data) -> H``: central differences of the exact gradient of −log L."""

    def build():
        pr = problem.static()

        def hess(z, data):
            grad = jax.grad(lambda zz: pr.negloglik(zz, data))
            h = FD_STEP * jnp.maximum(1.0, jnp.abs(z))
            e = jnp.diag(h)
            gp = jax.vmap(lambda d: grad(z + d))(e)
            gm = jax.vmap(lambda d: grad(z - d))(e)
            m = (gp - gm) / (2.0 * h[:, None])
            return 0.5 * (m + m.T)

        return cache.jit(hess, hoist=pr.constants, name="fd_hessian")

    return cache.get_or_build((*problem.structure_key, "fd-hessian"), build)


def _nan_sites(problem, z) -> list[str]:
    """The observed sites whose log-density has a NaN Hessian at ``z`` (all of them where the
    terms cannot be taken apart, e.g. with enumerated latents)."""
    observed = list(problem.sites.observed)
    if len(observed) == 1 or problem.sites.discrete:
        return observed
    bad = []
    for name in observed:
        try:
            h = jax.hessian(lambda zz, n=name: -jnp.sum(problem.loglik_terms(zz, problem.data)[n]))(
                jnp.asarray(z)
            )
        except Exception:  # noqa: BLE001 - a site that cannot be taken apart is named with the rest
            return observed
        if not bool(jnp.all(jnp.isfinite(h))):
            bad.append(name)
    return bad or observed


def rescue(problem, out, init: dict, key, steps, tol: float, scale):
    """``out`` unchanged unless its Hessian is NaN with a finite value and gradient; then the
    L-BFGS fit from the default start (or ``out``'s point, whichever ends lower), its Hessian
    by central differences, returned if the decrement under it passes ``FD_TOL`` at a
    positive-definite Hessian (else ``out``, for the diagnosis)."""
    opt = out[0]
    h = np.asarray(opt.hess)
    if np.all(np.isfinite(h)) or not (
        np.isfinite(float(opt.value)) and np.all(np.isfinite(np.asarray(opt.grad)))
    ):
        return out
    sites = _nan_sites(problem, opt.z)
    fitp = padded(problem)
    lb = fit_program(fitp, "lbfgs", steps, tol)
    tries = [jax.device_get(lb(fitp.data, jnp.asarray(opt.z), scale))]
    try:
        tries.append(jax.device_get(lb(fitp.data, start(problem, init, key, 0), scale)))
    except Exception:  # noqa: BLE001 - the default start is only a second chance
        pass
    tries = [t for t in tries if np.isfinite(float(t[0].value))] or [out]
    best = min(tries, key=lambda t: float(t[0].value))
    o = best[0]
    hfd = np.asarray(fd_hessian(problem)(jnp.asarray(o.z), problem.data))
    _, lam, _, gt = eig_scaled(jnp.asarray(o.grad), jnp.asarray(hfd))
    dec2, pd = (np.asarray(a) for a in decrement(lam, gt))
    ok = bool(pd) and np.isfinite(hfd).all() and 0.5 * float(dec2) <= FD_TOL
    if not ok:
        # no optimum there either (a mixture component collapsing: the Hessian overflowed on
        # the way to an unbounded likelihood): the original end point goes to the diagnosis
        return out
    o = o._replace(hess=hfd, decrement2=np.asarray(dec2), status=np.asarray(int(Status.CONVERGED), np.int32))
    warnings.warn(
        "the exact Hessian of the negative log-likelihood is NaN where its value and gradient are "
        f"finite: differentiating the log-density of observed site(s) {sites} twice gives NaN (a "
        "branch exact in value but not in its derivatives, e.g. a Poisson rate of exactly 0.0 in "
        "jnp.where(z == 1, 0.0, mu), whose log-density at y > 0 is −inf). The fit was finished "
        "by L-BFGS and the standard errors come from central differences of the exact gradient "
        "(relative accuracy ~1e-8); write a tiny positive value (1e-300) for the exact branch, "
        "or use a zero-inflated distribution, to get the exact Hessian",
        PrecisionWarning,
        stacklevel=4,
    )
    return (o, *best[1:])
