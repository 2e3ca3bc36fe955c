"""Observation units: how the log-likelihood splits into independent terms.

Units are the elements of the plates that every observed site shares (one unit
per cell of their product); a site's log-likelihood terms along any other batch
dimension are summed into its unit. Robust covariances, the nonparametric
bootstrap and cluster sandwiches all work per unit.

In a marginal fit with random effects over one plate of groups, observations in a
group are dependent through the group's effect and the *groups* are the independent
units: a unit's log-likelihood is the group's marginal log-likelihood
(:func:`mleppl.model.latent.group_loglik`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from . import latent

__all__ = ["UnitSpec", "observation_units", "unit_problem", "unit_loglik", "unit_weights"]


class UnitSpec(NamedTuple):
    """How the log-likelihood terms of each observed site fold into observation units (static)."""

    sites: tuple[tuple[str, tuple[int, ...]], ...]  # (site, batch axes kept, in unit order)
    shape: tuple[int, ...]  # shape of the unit grid
    plates: tuple[str, ...]  # plate names spanning the units ("" entries: no plate)
    marginal: bool = False  # units are random-effect groups (their marginal log-likelihoods)

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def unit_problem(problem, z):
    """``problem`` ready for per-unit terms at (or near) ``z``: a marginal fit's groups found.

    Raises
    ------
    ValueError
        Discrete latent sites summed out (no per-unit terms), or random effects that leave no
        independent groups (see :func:`mleppl.model.latent.with_unit_groups`).
    """
    if problem.sites.discrete:
        raise ValueError(
            f"discrete latent site(s) {list(problem.sites.discrete)} are summed out jointly: this "
            "marginal fit has no per-unit log-likelihood terms; expected kind='oim' (with_cov) or "
            "kind='parametric' (bootstrap)"
        )
    if problem.random is None:
        return problem
    if problem.random.restricted:
        raise ValueError(
            f"REML fit (fixed effects {list(problem.random.restricted)} integrated out): the restricted "
            "likelihood is not a sum over observation units, so nothing can be resampled or summed "
            "per unit; expected kind='parametric' (bootstrap), or a fit by ML (without reml=)"
        )
    return latent.with_unit_groups(problem, z)


def observation_units(problem) -> UnitSpec:
    """The observation units of a model bound to its data.

    A model without any plate qualifies when all observed sites have the same
    batch shape: each element is a unit. Anything else has no unambiguous unit
    and is refused.

    Raises
    ------
    ValueError
        No plate shared by all observed sites, or a subsampled plate.
    """
    if problem.random is not None:
        spec = problem.random
        if not spec.obs_groups or not spec.blocked:
            raise RuntimeError("observation_units: expected a problem from unit_problem for a marginal fit")
        return UnitSpec((), (spec.n_groups,), (spec.plate,), True)
    data = problem.sites.data
    info = {o.name: (o.batch_shape, {p: (dim, size) for p, dim, size in o.plates}) for o in data}
    shared = set.intersection(*(set(p) for _, p in info.values()))
    if shared:
        first = info[data[0].name][1]
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
                tuple((o.name, tuple(range(len(bshape)))) for o in data), bshape, ("",) * len(bshape)
            )
    desc = {n: sorted(p) for n, (_, p) in info.items()}
    raise ValueError(
        "per-observation scores need an observation plate: expected every observed site inside "
        f"a common numpyro.plate (or no plates and equal batch shapes), got plates {desc}"
    )


def _fold(spec: UnitSpec, terms: dict, xp):
    total = xp.zeros(spec.size)
    for name, axes in spec.sites:
        t = terms[name]
        rest = tuple(a for a in range(t.ndim) if a not in axes)
        t = xp.sum(xp.transpose(t, axes + rest), axis=tuple(range(len(axes), t.ndim)))
        total = total + xp.reshape(t, (-1,))
    return total


def unit_loglik(problem, spec: UnitSpec, z, data, weights=None):
    """Log-likelihood of each observation unit at ``z``, flat over the unit grid (traceable).

    With ``weights`` (one per unit) the weighted sum of these terms is the
    log-likelihood of a data set in which unit ``i`` appears ``weights[i]`` times.
    """
    if spec.marginal:
        total = latent.group_loglik(problem, z, data)
    else:
        total = _fold(spec, problem.loglik_terms(z, data), jnp)
    return total if weights is None else total * weights


def unit_weights(problem, spec: UnitSpec) -> np.ndarray:
    """Total NumPyro weight (mask × scale) of each unit; 0 for a fully masked unit."""
    if spec.marginal:
        return np.ones(spec.size)
    return np.asarray(_fold(spec, {o.name: o.weight for o in problem.sites.data}, np), dtype=np.float64)
