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

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _numpyro as npa
from ._covariance import InverseInformation, delta_cov, invert_information
from ._result import frozen_array, frozen_dict

__all__ = ["COV_KINDS", "UnitSpec", "observation_units", "unit_loglik", "scores", "with_cov"]

COV_KINDS = ("oim", "opg", "hc0", "hc1", "cluster")

_PROGRAMS: dict = {}


class UnitSpec(NamedTuple):
    """How the log-likelihood terms of each observed site fold into observation units (static)."""

    sites: tuple[tuple[str, tuple[int, ...]], ...]  # (site, batch axes kept, in unit order)
    shape: tuple[int, ...]  # shape of the unit grid
    plates: tuple[str, ...]  # plate names spanning the units ("" entries: no plate)

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def observation_units(bound) -> UnitSpec:
    """The observation units of a model bound to its data.

    Units are the elements of the plates that every observed site shares
    (one unit per cell of their product); a site's log-likelihood terms along
    any other batch dimension are summed into its unit. A model without any
    plate qualifies when all observed sites have the same batch shape: each
    element is a unit. Anything else has no unambiguous unit and is refused.

    Raises
    ------
    ValueError
        No plate shared by all observed sites, or a subsampled plate.
    """
    tr, observed = bound.trace, bound.problem.sites.observed
    info = {name: npa.site_plates(tr, name) for name in observed}
    shared = set.intersection(*(set(p) for _, p in info.values()))
    if shared:
        first = info[observed[0]][1]
        names = tuple(sorted(shared, key=lambda k: first[k][0]))  # outermost plate first
        sites, shape = [], tuple(first[k][1] for k in names)
        for name, (bshape, plates) in info.items():
            axes = []
            for k in names:
                dim, size = plates[k]
                ax = len(bshape) + dim
                if ax < 0 or bshape[ax] != size:
                    got = bshape[ax] if ax >= 0 else "none"
                    raise ValueError(
                        f"observed site '{name}': expected plate '{k}' of size {size} along its "
                        f"batch dimension {dim}, got extent {got} (a subsampled plate has no "
                        "per-observation scores over the full data)"
                    )
                axes.append(ax)
            sites.append((name, tuple(axes)))
        return UnitSpec(tuple(sites), shape, names)
    if all(not p for _, p in info.values()):
        shapes = {b for b, _ in info.values()}
        if len(shapes) == 1:
            (bshape,) = shapes
            return UnitSpec(
                tuple((n, tuple(range(len(bshape)))) for n in observed), bshape, ("",) * len(bshape)
            )
    desc = {n: sorted(p) for n, (_, p) in info.items()}
    raise ValueError(
        "per-observation scores need an observation plate: expected every observed site inside "
        f"a common numpyro.plate (or no plates and equal batch shapes), got plates {desc}"
    )


def unit_loglik(problem, spec: UnitSpec, z, leaves, weights=None):
    """Log-likelihood of each observation unit at ``z``, flat over the unit grid (traceable).

    With ``weights`` (one per unit) the weighted sum of these terms is the
    log-likelihood of a data set in which unit ``i`` appears ``weights[i]`` times.
    """
    terms = problem.loglik_terms(z, leaves)
    total = jnp.zeros(spec.size)
    for name, axes in spec.sites:
        t = terms[name]
        rest = tuple(a for a in range(t.ndim) if a not in axes)
        t = jnp.sum(jnp.transpose(t, axes + rest), axis=tuple(range(len(axes), t.ndim)))
        total = total + jnp.reshape(t, (-1,))
    return total if weights is None else total * weights


def _unit_weights(bound, spec: UnitSpec) -> np.ndarray:
    """Total NumPyro weight (mask × scale) of each unit; 0 for a fully masked unit."""
    with jax.enable_x64(True):
        w = npa.loglik_terms(bound.trace, bound.problem.sites.observed)
    total = np.zeros(spec.size)
    for name, axes in spec.sites:
        t = np.asarray(w[name][1], dtype=np.float64)
        rest = tuple(a for a in range(t.ndim) if a not in axes)
        total += np.sum(np.transpose(t, axes + rest), axis=tuple(range(len(axes), t.ndim))).reshape(-1)
    return total


def program_key(bound, *extra):
    """Cache key of a compiled function of this model and data structure (as fit_mle's)."""
    from ._fit import _structure_key

    return (*_structure_key(bound), *extra)


def _score_program(bound, spec: UnitSpec):
    key = program_key(bound, "scores", spec)
    prog = _PROGRAMS.get(key)
    if prog is None:
        pr = bound.problem
        prog = jax.jit(jax.jacfwd(lambda z, leaves: unit_loglik(pr, spec, z, leaves)))
        _PROGRAMS[key] = prog
    return prog


def leaves_of(bound) -> tuple:
    return tuple(jnp.asarray(x) for x in bound.inputs.leaves)


def scores(res) -> np.ndarray:
    r"""Per-observation scores :math:`s_i = \nabla_z \log L_i(\hat z)`, shape (units, p).

    Rows follow the unit grid of :func:`observation_units` in C order; the
    columns follow the unconstrained vector ``res.z``.
    """
    bound = res.fit
    spec = observation_units(bound)
    with jax.enable_x64(True):
        s = _score_program(bound, spec)(jnp.asarray(res.z), leaves_of(bound))
        return np.asarray(jax.device_get(s), dtype=np.float64)


def _check_groups(groups, n_units: int) -> np.ndarray:
    if groups is None:
        raise ValueError("groups: expected one cluster label per observation for kind='cluster', got None")
    g = np.asarray(groups)
    if g.ndim != 1 or g.shape[0] != n_units:
        raise ValueError(
            f"groups: expected a 1-D array of {n_units} labels (one per observation unit), "
            f"got shape {g.shape}"
        )
    if g.dtype.kind == "f" and not np.all(np.isfinite(g)):
        raise ValueError("groups: expected finite labels, got NaN/inf")
    return np.unique(g, return_inverse=True)[1].reshape(-1)


def _sandwich(inv: InverseInformation, meat: np.ndarray) -> InverseInformation:
    a = np.where(np.isfinite(inv.cov), inv.cov, 0.0)
    cov = a @ meat @ a
    cov = 0.5 * (cov + cov.T)
    cov[~inv.estimable, :] = np.nan
    cov[:, ~inv.estimable] = np.nan
    return inv._replace(cov=cov)


def cov_z_of_kind(res, kind: str, groups=None) -> InverseInformation:
    """The unconstrained-scale covariance of ``kind`` (see :func:`with_cov`)."""
    inv = invert_information(res.hessian)
    if kind == "oim":
        return inv
    s = scores(res)
    weights = _unit_weights(res.fit, observation_units(res.fit))
    n = int(np.count_nonzero(weights))
    p = s.shape[1]
    if kind == "opg":
        return invert_information(s.T @ s)
    if kind in ("hc0", "hc1"):
        out = _sandwich(inv, s.T @ s)
        if kind == "hc1":
            if n <= p:
                raise ValueError(f"kind='hc1': expected more observations than parameters, got n={n}, p={p}")
            out = out._replace(cov=out.cov * (n / (n - p)))
        return out
    codes = _check_groups(groups, s.shape[0])
    n_groups = int(codes.max()) + 1
    if n_groups < 2:
        raise ValueError(f"groups: expected at least 2 distinct clusters, got {n_groups}")
    sums = np.zeros((n_groups, p))
    np.add.at(sums, codes, s)
    out = _sandwich(inv, sums.T @ sums)
    factor = n_groups / (n_groups - 1) * (n - 1) / (n - p)
    return out._replace(cov=out.cov * factor)


def _deterministic_se(res, inv: InverseInformation) -> dict:
    if not res.deterministic:
        return {}
    bound = res.fit
    pr = bound.problem
    with jax.enable_x64(True):
        jac = jax.jacfwd(lambda z: pr.deterministic(z, leaves_of(bound)).astype(jnp.float64))(
            jnp.asarray(res.z)
        )
        jac = np.asarray(jax.device_get(jac))
    var = np.diag(delta_cov(jac, inv))
    out, i = {}, 0
    for name, val in res.deterministic.items():
        k = int(np.size(val))
        out[name] = np.sqrt(var[i : i + k]).reshape(np.shape(val))
        i += k
    return out


def with_cov(res, kind: str = "oim", *, groups=None):
    r"""A copy of a fitted result whose covariance is of another kind.

    Parameters
    ----------
    res : MLEResult
        A fitted result.
    kind : {"oim", "opg", "hc0", "hc1", "cluster"}
        ``"oim"``: inverse observed information (the default of
        :func:`mleppl.fit_mle`). ``"opg"``: inverse outer product of the
        per-observation scores. ``"hc0"``: the Huber–White sandwich.
        ``"hc1"``: the sandwich times ``n/(n−p)``. ``"cluster"``: the sandwich
        with scores summed within clusters, times ``G/(G−1)·(n−1)/(n−p)``.
    groups : array-like, optional
        One cluster label per observation unit (required for ``"cluster"``).

    Returns
    -------
    MLEResult
        A new result whose ``cov``, ``se``, ``cov_z``, ``deterministic_se``,
        ``summary()`` and Wald intervals use this covariance; ``cov_type`` is
        ``kind``. The estimate is unchanged.

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

    Examples
    --------
    >>> import jax.numpy as jnp, numpy as np, numpyro, numpyro.distributions as dist
    >>> from mleppl import fit_mle
    >>> def model(x, y=None):
    ...     b = numpyro.sample("b", dist.Normal(0, 10).expand([2]).to_event(1))
    ...     with numpyro.plate("n", x.shape[0]):
    ...         numpyro.sample("y", dist.Poisson(jnp.exp(b[0] + b[1] * x)), obs=y)
    >>> x = np.linspace(-1, 1, 8); y = np.array([0, 1, 1, 0, 2, 3, 1, 4.0])
    >>> res = fit_mle(model, x, y=y).with_cov("hc0")
    >>> res.cov_type, res.se["b"].shape
    ('hc0', (2,))
    """
    if kind not in COV_KINDS:
        raise ValueError(f"kind: expected one of {COV_KINDS}, got {kind!r}")
    if groups is not None and kind != "cluster":
        raise ValueError(f"groups: expected None for kind={kind!r} (only 'cluster' uses groups)")
    inv = cov_z_of_kind(res, kind, groups)
    cov = delta_cov(res.jacobian, inv)
    layout = res.fit.problem.layout
    return dataclasses.replace(
        res,
        cov=frozen_array(cov),
        se=frozen_dict(layout.split(np.sqrt(np.diag(cov)))),
        cov_z=frozen_array(inv.cov),
        deterministic_se=frozen_dict(_deterministic_se(res, inv)),
        cov_type=kind,
    )
