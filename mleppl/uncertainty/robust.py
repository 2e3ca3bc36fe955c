"""Covariance types of a fitted result: observed information, OPG, sandwich, cluster.

Every kind is built on the unconstrained scale from two ingredients, both by
automatic differentiation at the estimate :math:`\\hat z`:

- the observed information :math:`H = \\nabla^2 \\ell(\\hat z)` (stored on the
  result), and
- the per-observation scores :math:`s_i = \\nabla_z \\log L_i(\\hat z)`, one row per
  *observation unit*: an element of the observation plate (see
  :func:`observation_units`).

and mapped to the constrained parameters with the delta method, exactly like
the default covariance.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..core import cache, hostview
from ..core.records import InverseInformation, mask_cov
from ..model.units import observation_units, unit_loglik, unit_problem, unit_weights
from .information import delta_cov, invert_information, restrict

__all__ = ["COV_KINDS", "scores", "meat", "cov_z_of_kind", "deterministic_se", "RobustCov", "robust_cov"]

COV_KINDS = ("oim", "opg", "hc0", "hc1", "cluster")


def _score_program(problem, spec):
    def build():
        pr = problem.static()
        return cache.jit(
            jax.jacfwd(lambda z, data: unit_loglik(pr, spec, z, data)), hoist=pr.constants, name="unit_scores"
        )

    return cache.get_or_build((*problem.structure_key, "scores", spec), build)


def _meat_program(problem, spec, n_groups: int | None):
    """``(z, data, codes) -> Σ_g S_g S_gᵀ`` (p × p) in one program: the scores are formed and
    summed where the data are (on several devices when the data are sharded along the
    observation plate; only the p × p result comes back). ``n_groups=None``: one group per
    unit (Σ_i s_i s_iᵀ)."""

    def build():
        pr = problem.static()
        score = jax.jacfwd(lambda z, data: unit_loglik(pr, spec, z, data))

        def meat(z, data, codes):
            s = score(z, data)
            if n_groups is not None:
                s = jax.ops.segment_sum(s, codes, num_segments=n_groups)
            return s.T @ s

        return cache.jit(
            meat, hoist=pr.constants, name="meat"
        )  # constants mode: data as inputs, not embedded

    return cache.get_or_build((*problem.structure_key, "meat", spec, n_groups), build)


def meat(problem, z, codes=None, n_groups: int | None = None) -> np.ndarray:
    r"""The middle of the sandwich, :math:`\sum_g S_g S_g^\top` with :math:`S_g = \sum_{i \in g} s_i`
    (``codes`` in ``0..n_groups-1``, one per unit), or :math:`\sum_i s_i s_i^\top` without."""
    spec = observation_units(problem)
    c = jnp.zeros((0,), jnp.int32) if codes is None else jnp.asarray(codes, jnp.int32)
    m = _meat_program(problem, spec, n_groups)(jnp.asarray(z), problem.data, c)
    return np.asarray(jax.device_get(m), dtype=np.float64)


def scores(problem, z) -> np.ndarray:
    r"""Per-observation scores :math:`s_i = \nabla_z \log L_i(\hat z)`, shape (units, p): NumPy,
    or a global array left on its devices when the units lie in several processes.

    Rows follow the unit grid of :func:`mleppl.model.units.observation_units` in
    C order; the columns follow the unconstrained vector ``z``.
    """
    problem = unit_problem(problem, z)
    spec = observation_units(problem)
    s = _score_program(problem, spec)(jnp.asarray(z), problem.data)
    if hostview.is_global(s):  # units on several processes: the scores stay where they are
        return s
    return np.asarray(jax.device_get(s), dtype=np.float64)


def _check_groups(groups, n_units: int, marginal: bool = False) -> np.ndarray:
    what = "random-effect group" if marginal else "observation unit"
    if groups is None:
        if marginal:  # the random-effect groups are the clusters
            return np.arange(n_units)
        raise ValueError("groups: expected one cluster label per observation for kind='cluster', got None")
    g = groups if hostview.is_global(groups) else np.asarray(groups)
    if g.ndim != 1 or g.shape[0] != n_units:
        raise ValueError(
            f"groups: expected a 1-D array of {n_units} labels (one per {what}), got shape {g.shape}"
        )
    if g.dtype.kind == "f" and hostview.count_true(lambda xp, a: ~xp.isfinite(a), g):
        raise ValueError("groups: expected finite labels, got NaN/inf")
    if hostview.is_global(g):  # labels on several processes: coded where they are
        k = int(hostview.on_devices(lambda a: jnp.sum(jnp.diff(jnp.sort(a)) != 0) + 1, g))
        return jax.jit(lambda a: jnp.unique(a, size=k, return_inverse=True)[1].reshape(-1))(g)
    return np.unique(g, return_inverse=True)[1].reshape(-1)


def _sandwich(inv: InverseInformation, meat: np.ndarray) -> InverseInformation:
    a = np.where(np.isfinite(inv.cov), inv.cov, 0.0)
    cov = a @ meat @ a
    return inv._replace(cov=mask_cov(0.5 * (cov + cov.T), ~inv.estimable))


def cov_z_of_kind(rec, kind: str, groups=None) -> InverseInformation:
    """The unconstrained-scale covariance of ``kind`` for a fit record (see :func:`robust_cov`).

    Coordinates the diagnosis ruled out (``rec.invalid``) stay NaN in every kind.
    """
    inv = restrict(invert_information(rec.hessian), rec.invalid)
    if kind == "oim":
        return inv
    problem = unit_problem(rec.problem, rec.z)
    units = observation_units(problem)
    weights = unit_weights(problem, units)
    n = int(np.count_nonzero(weights))
    p = int(np.size(rec.z))
    if kind in ("opg", "hc0", "hc1"):
        outer = meat(problem, rec.z)
    if kind == "opg":
        return restrict(invert_information(outer), rec.invalid)
    if kind in ("hc0", "hc1"):
        out = _sandwich(inv, outer)
        if kind == "hc1":
            if n <= p:
                raise ValueError(f"kind='hc1': expected more observations than parameters, got n={n}, p={p}")
            out = out._replace(cov=out.cov * (n / (n - p)))
        return out
    codes = _check_groups(groups, weights.shape[0], units.marginal)
    n_groups = int(hostview.on_devices(jnp.max, codes) if hostview.is_global(codes) else codes.max()) + 1
    if n_groups < 2:
        raise ValueError(f"groups: expected at least 2 distinct clusters, got {n_groups}")
    out = _sandwich(inv, meat(problem, rec.z, codes, n_groups))
    factor = n_groups / (n_groups - 1) * (n - 1) / (n - p)
    return out._replace(cov=out.cov * factor)


def deterministic_se(rec, inv: InverseInformation) -> dict:
    """Delta-method standard errors of the deterministic sites under covariance ``inv``."""
    if not rec.deterministic:
        return {}
    pr = rec.problem
    jac = jax.jacfwd(lambda z: pr.deterministic(z, pr.data))(jnp.asarray(rec.z))
    var = np.diag(delta_cov(np.asarray(jax.device_get(jac)), inv))
    out, i = {}, 0
    for name, val in rec.deterministic.items():
        k = int(np.size(val))
        out[name] = np.sqrt(var[i : i + k]).reshape(np.shape(val))
        i += k
    return out


class RobustCov(NamedTuple):
    """A covariance of another kind for a fit: unconstrained, constrained, deterministic SEs."""

    inv: InverseInformation
    cov: np.ndarray
    se: dict
    deterministic_se: dict


def robust_cov(rec, kind: str = "oim", *, groups=None) -> RobustCov:
    r"""The covariance of another kind for a fit (what ``MLEResult.with_cov`` installs).

    Parameters
    ----------
    rec : FitRecord
        A fit.
    kind, groups
        As for :meth:`mleppl.MLEResult.with_cov`.

    Returns
    -------
    RobustCov
        The unconstrained covariance record, the constrained covariance, standard
        errors by site and of the deterministic sites.

    Raises
    ------
    ValueError
        Unknown kind, missing or misshaped ``groups``, or a model without an
        observation plate (scores-based kinds only).

    Notes
    -----
    On the unconstrained scale, with :math:`H` the observed information and
    :math:`s_i` the score of observation unit :math:`i`,

    .. math::
        \Sigma_{\mathrm{opg}} = \Big(\sum_i s_i s_i^\top\Big)^{-1},\quad
        \Sigma_{\mathrm{hc0}} = H^{-1}\Big(\sum_i s_i s_i^\top\Big)H^{-1},\quad
        \Sigma_{\mathrm{cl}} = c\,H^{-1}\Big(\sum_g S_g S_g^\top\Big)H^{-1},

    with :math:`S_g = \sum_{i \in g} s_i` and
    :math:`c = \tfrac{G}{G-1}\tfrac{n-1}{n-p}`, then
    :math:`\Sigma_\theta = J \Sigma_z J^\top`. These are statsmodels'
    ``cov_type="HC0"``, ``"HC1"`` and ``"cluster"``. ``n`` counts observation
    units that are not fully masked. Units are the elements of the plate
    shared by all observed sites; a model whose observed sites share no plate
    (and are not all of one batch shape) has no per-observation scores and
    only ``"oim"`` is available for it.

    **Marginal fits** (``random=``): observations in a group share its random effect, so
    the units are the groups and :math:`s_g = \nabla_z \log L_g` is the score of group
    :math:`g`'s marginal log-likelihood. ``"hc0"``/``"hc1"`` are then sandwiches over
    groups (``n`` = number of groups; clubSandwich's CR0, and CR0 × G/(G−p)), and
    ``"cluster"`` without ``groups`` clusters by the random-effect groups (with
    ``groups``, one label per random-effect group, coarser clusters). Crossed effects
    and discrete latents summed out have no independent units: ``"oim"`` only.

    Examples
    --------
    See :meth:`mleppl.MLEResult.with_cov`, which installs this covariance on a result.
    """
    if kind not in COV_KINDS:
        raise ValueError(f"kind: expected one of {COV_KINDS}, got {kind!r}")
    if groups is not None and kind != "cluster":
        raise ValueError(f"groups: expected None for kind={kind!r} (only 'cluster' uses groups)")
    inv = cov_z_of_kind(rec, kind, groups)
    cov = delta_cov(rec.jacobian, inv)
    se = rec.problem.layout.split(np.sqrt(np.diag(cov)))
    return RobustCov(inv, cov, se, deterministic_se(rec, inv))
