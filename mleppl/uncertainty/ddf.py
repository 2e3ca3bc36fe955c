r"""Denominator degrees of freedom for the fixed effects of Gaussian (mixed) models.

Satterthwaite's approximation, as lmerTest computes it: for a contrast :math:`L` of the
fixed effects with variance :math:`v(\phi) = L\,C(\phi)\,L^\top`, where :math:`C(\phi)` is
the covariance of :math:`\hat\beta` given the variance parameters :math:`\phi` (lme4's
``vcov``, :math:`\sigma^2 (X^\top V^{-1} X)^{-1}`),

.. math:: \nu = \frac{2\,v(\hat\phi)^2}{g^\top A\, g}, \qquad g = \nabla_\phi v(\hat\phi),

with :math:`A` the asymptotic covariance of :math:`\hat\phi`: the inverse Hessian of the
(restricted or profiled) negative log-likelihood in :math:`\phi`. lmerTest differentiates
:math:`v` numerically; here :math:`C(\phi)` is the fixed-effect block of the inverse joint
Hessian of (random effects, fixed effects) at the conditional mode, and :math:`g` its
exact derivative by automatic differentiation (through the implicit inner mode). :math:`\nu`
does not depend on how :math:`\phi` is parameterized (the Jacobians cancel), so the
optimizer's unconstrained coordinates serve.

For a REML fit :math:`C` and :math:`A` come from the fit itself. For an ML fit the fixed
effects are its sites with support all of R (location parameters); :math:`C(\phi)` is taken
from the model bound with those sites integrated out (the same conditional covariance, which
for a Gaussian model does not depend on :math:`\beta`), and :math:`A` is the variance
parameters' block of the fit's inverse observed information (the inverse Hessian of the
likelihood profiled over :math:`\beta`), as lmerTest uses the ML deviance.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..adapters import numpyro as npa
from ..core import cache
from ..core.sites import param_labels
from ..model import latent
from ..model.problem import bind

__all__ = ["Satterthwaite", "satterthwaite", "DF_METHODS"]

DF_METHODS = ("satterthwaite",)


class Satterthwaite(NamedTuple):
    """Per fixed-effect entry: ``names``, estimate, standard error from :math:`C(\\hat\\phi)`,
    and degrees of freedom ``df``; ``cov`` is :math:`C(\\hat\\phi)`."""

    names: list
    estimate: np.ndarray
    se: np.ndarray
    df: np.ndarray
    cov: np.ndarray


def satterthwaite(rec, L=None) -> Satterthwaite:
    r"""Satterthwaite degrees of freedom of the fixed effects of a Gaussian (mixed) model fit.

    Parameters
    ----------
    rec : FitRecord
        A converged fit (ML or REML) whose observed sites are Normal.
    L : array, optional
        Contrasts (rows) of the flat fixed-effect vector; default: each entry alone.

    Returns
    -------
    Satterthwaite

    Raises
    ------
    ValueError
        An observed site that is not Normal, a quadrature fit, no fixed effects, or ``L``
        of the wrong width.

    Notes
    -----
    For each contrast row :math:`\ell` of ``L``, :math:`v = \ell C(\hat\phi) \ell^\top` and

    .. math:: \nu = \frac{2 v^2}{g^\top A g}, \qquad g = \nabla_\phi\, \ell C(\phi) \ell^\top,

    (see the module notes). For a linear model :math:`\nu = n - p` under REML and
    :math:`n` under ML.

    Examples
    --------
    >>> import numpy as np, numpyro, numpyro.distributions as dist
    >>> from mleppl import fit_mle
    >>> from mleppl.uncertainty.ddf import satterthwaite
    >>> def model(X, y=None):
    ...     b = numpyro.sample("b", dist.Normal(0, 10).expand([2]).to_event(1))
    ...     s = numpyro.sample("s", dist.HalfNormal(5))
    ...     with numpyro.plate("n", X.shape[0]):
    ...         numpyro.sample("y", dist.Normal(X @ b, s), obs=y)
    >>> X = np.column_stack([np.ones(12), np.arange(12.0)])
    >>> y = 1.0 + 0.5 * X[:, 1] + np.sin(np.arange(12.0))
    >>> res = fit_mle(model, X, y=y, reml=["b"])
    >>> np.round(satterthwaite(res).df, 6)  # n - p
    array([10., 10.])
    """
    problem = rec.problem
    _check_gaussian(rec)
    if rec.reml:
        rp, names = problem, tuple(rec.reml)
        z_phi = np.asarray(rec.z, dtype=np.float64)
        A = np.asarray(rec.cov_z, dtype=np.float64)
    else:
        names = tuple(s.name for s in problem.layout.sites if s.kind == "sample" and not s.bounded)
        if not names:
            raise ValueError(
                "df: expected fixed effects (latent sample sites with support all of R) in the model, got none"
            )
        rp = _restricted_problem(problem, names)
        keep = np.concatenate(
            [np.arange(b.z.start, b.z.stop) for b in problem.layout.blocks() if b.site.name not in names]
            or [np.zeros(0, np.int64)]
        ).astype(np.int64)
        z_phi = np.asarray(rec.z, dtype=np.float64)[keep]
        A = np.asarray(rec.cov_z, dtype=np.float64)[np.ix_(keep, keep)]
    with jax.enable_x64(True):
        cov, dcov = (np.asarray(x) for x in jax.device_get(_program(rp)(jnp.asarray(z_phi), rp.data)))
    est = np.concatenate([np.ravel(np.asarray(rec.params[n])) for n in names])
    labels = _labels(rec, names)
    Lm = np.eye(est.size) if L is None else np.atleast_2d(np.asarray(L, dtype=np.float64))
    if Lm.shape[1] != est.size:
        raise ValueError(
            f"L: expected {est.size} columns (the fixed-effect entries {labels}), got {Lm.shape[1]}"
        )
    v = np.einsum("ij,jk,ik->i", Lm, cov, Lm)
    g = np.einsum("ij,jkm,ik->im", Lm, dcov, Lm)  # ∂v/∂φ, one row per contrast
    with np.errstate(divide="ignore", invalid="ignore"):
        df = 2.0 * v**2 / np.einsum("im,mn,in->i", g, A, g)
    return Satterthwaite(
        labels if L is None else [f"L{i}" for i in range(len(v))], Lm @ est, np.sqrt(v), df, cov
    )


def _check_gaussian(rec) -> None:
    pr = rec.problem
    args, kwargs = pr.rebuild(pr.data)
    values = {k: np.asarray(v) for k, v in rec.params.items()}
    if pr.random is not None:
        values.update({k: np.asarray(v) for k, v in rec.random_modes.items()})
    with jax.enable_x64(True):
        tr = npa.trace_with_values(pr.prior_free_model, args, kwargs, values)
    fams = {o: type(npa.base_distribution(tr[o]["fn"])).__name__ for o in pr.sites.observed}
    other = {o: f for o, f in fams.items() if f != "Normal"}
    if other:
        raise ValueError(
            f"df='satterthwaite': expected a Gaussian (linear mixed) model, got observed sites {other}; "
            "denominator degrees of freedom are defined for Normal likelihoods (as lmerTest's); use "
            "the z-based summary (df=None)"
        )
    if pr.random is not None and pr.random.nagq > 1:
        raise ValueError("df='satterthwaite': expected a Laplace fit (nagq=1)")


def _restricted_problem(problem, names):
    """The model bound again with the fixed effects ``names`` integrated out (flat density)."""
    args, kwargs = problem.rebuild(problem.data)
    random = tuple(s.name for s in problem.random.layout.sites) if problem.random is not None else ()
    with jax.enable_x64(True):
        return bind(problem.require_model(), args, kwargs, jax.random.PRNGKey(0), random=random, reml=names)


def _program(rp):
    """``(z, data) -> (C(z), ∂C/∂z)``, compiled once per restricted model structure."""
    idx = latent.restricted_coords(rp.random)

    def run(z, data):
        def C(zz):
            return latent.restricted_cov(rp.static(), zz, data, idx)

        return C(z), jax.jacfwd(C)(z)

    pr = rp.static()
    return cache.get_or_build(
        (*pr.structure_key, "satterthwaite"), lambda: cache.jit(run, hoist=pr.constants, name="satterthwaite")
    )


def _labels(rec, names) -> list:
    coords = dict(rec.problem.layout.coords)
    out = []
    for n in names:
        out += param_labels(n, np.shape(rec.params[n]), coords)
    return out
