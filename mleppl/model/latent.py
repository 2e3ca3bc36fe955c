r"""Random effects integrated out: the Laplace approximation and adaptive Gauss–Hermite quadrature.

For parameters :math:`\theta` and random effects :math:`u = u(v)` (NumPyro's bijection of
their support, so that :math:`v` is unconstrained), the joint log-density is

.. math:: f(\theta, v) = \log p(y \mid u(v), \theta) + \log p(u(v) \mid \theta) + \log|J_u(v)|,

and the marginal likelihood :math:`L(\theta) = \int e^{f(\theta, v)}\,dv`.

**Laplace** (TMB's ``random=``, lme4's ``nAGQ = 1``): with the inner mode
:math:`\hat v(\theta) = \arg\max_v f` and :math:`H = -\nabla_v^2 f(\theta, \hat v)`,

.. math:: \log L(\theta) \approx f(\theta, \hat v) + \tfrac{q}{2}\log 2\pi - \tfrac12 \log\det H.

The inner mode is found by Newton's method with the exact Hessian and enters through
``jax.lax.custom_root``, so gradients and the outer Hessian are exact (implicit
differentiation, :math:`d\hat v/d\theta = H^{-1}\,\partial_\theta\nabla_v f`).

**Structure.** Random effects in a plate over groups give a block-diagonal :math:`H`
(one :math:`q_g \times q_g` block per group). The blocks are recovered from
:math:`q_g` Hessian-vector products (one per position within a block, "colouring"), so
the cost is linear in the number of groups and no dense :math:`G \times G` matrix is
formed. Whether the structure holds is checked once, numerically, when the model is
bound (a random probe vector); crossed effects (two plates) fall back to a dense inner
Hessian, which is fine up to ``DENSE_MAX`` random-effect coordinates.

**Adaptive Gauss–Hermite quadrature** (lme4's ``nAGQ = k``) for one scalar random effect
per group: with :math:`f = \sum_g f_g(v_g) + f_0` and :math:`\hat\sigma_g = H_{gg}^{-1/2}`,

.. math:: \log L = f_0 + \sum_g \log\Big[\sqrt2\,\hat\sigma_g \sum_k w_k e^{x_k^2}
   e^{f_g(\hat v_g + \sqrt2 \hat\sigma_g x_k)}\Big].

The per-group terms :math:`f_g` come from the per-observation log-likelihood terms summed
by group; which group each observation belongs to is read off the derivatives once at
bind time (:math:`\partial \ell_i/\partial v` is non-zero only for the observation's own
group).

**Group contributions.** With block-diagonal structure the marginal log-likelihood is a
sum of independent group terms, :math:`\log L = \sum_g \log L_g` with (Laplace)

.. math:: \log L_g(\theta) = f_g(\theta, \hat v_g) + \tfrac{q_g}{2}\log 2\pi
   - \tfrac12 \log\det H_g,

so the groups are the independent units of a marginal fit: their scores
:math:`\nabla_\theta \log L_g` give the group-level sandwich and resampling them with
replacement (weights on :math:`\log L_g`) is the cluster bootstrap. The inner mode of a
group does not depend on its weight, so a weighted marginal likelihood needs no new
inner solves beyond the usual ones.
"""

from __future__ import annotations

import functools
import math
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..adapters import numpyro as npa
from ..core import cache
from ..core.sites import Layout
from .structure import BlockDiagonal, Dense, Factor, Sparse, sparse_pattern

__all__ = [
    "RandomSpec",
    "DENSE_MAX",
    "check_dense_memory",
    "dense_memory",
    "random_spec",
    "laplace_negloglik",
    "group_loglik",
    "with_unit_groups",
    "inner_mode",
    "conditional",
    "fixed_part_negloglik",
]

DENSE_MAX = 2000
_INNER_STEPS = 100
_INNER_TOL = 1e-22  # λ²/2 of the inner Newton iteration (float64 roundoff level)


class RandomSpec(NamedTuple):
    """Static description of the integrated sites and the structure of their inner Hessian."""

    layout: Layout  # blocks of the unconstrained random-effect vector v
    structure: Any  # structure.Dense | structure.BlockDiagonal | structure.Sparse
    nagq: int
    obs_groups: tuple = ()  # (term, group of each element): observed sites and random-site densities
    units: bool = False  # obs_groups checked to cover every term (groups usable as units)
    # the integrated sites that carry a flat density (REML's fixed effects, reml=): the rest of
    # the layout are random effects; the objective is then the restricted log-likelihood
    restricted: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return self.layout.size

    @property
    def blocked(self) -> bool:
        """Block-diagonal over one plate of groups (independent groups)."""
        return isinstance(self.structure, BlockDiagonal)

    @property
    def block(self) -> int:
        return self.structure.block if self.blocked else 0

    @property
    def n_groups(self) -> int:
        return self.structure.n_groups if self.blocked else 0

    @property
    def groups(self):
        return self.structure.groups if self.blocked else None

    @property
    def plate(self) -> str:
        return self.structure.plate if self.blocked else ""


def joint_logdensity(problem, z, v, data):
    """f(θ(z), v): log p(y, u(v) | θ) with the random sites' densities kept, plus log|J_u(v)|."""
    if problem.constants or not isinstance(z, jax.core.Tracer) and not isinstance(v, jax.core.Tracer):
        return _joint(problem, z, v, data)
    # inside a traced program: one jitted function, so the model is traced once per signature
    # (the Laplace program differentiates f to fourth order: a logistic GLMM traced the model
    # about 40 times, 0.77 s, where the nested jit takes 0.47 s); held as constants, the data
    # would be embedded in the nested program, so that path traces the model each time
    fn = cache.get_or_build(
        (*problem.structure_key, "joint"),
        lambda: jax.jit(cache.named(partial(_joint, problem.static()), "joint")),
    )
    return fn(z, v, data)


def _joint(problem, z, v, data):
    args, kwargs = problem.rebuild(data)
    rs = problem.random.layout
    values = {**problem.layout.constrain(z), **rs.constrain(v)}
    ll, _ = npa.log_density(problem.likelihood_model(data), args, kwargs, values)
    return ll + npa.log_abs_det_jacobian(rs.sites, rs.unravel(v))


def _terms(problem, z, v, data):
    """Every term of f, flat: the observed sites' log-likelihood terms, each random site's
    log-density and log-Jacobian (the sparse structure's entries are their curvatures)."""
    return jnp.concatenate([jnp.ravel(t) for t in _all_terms(problem, z, v, data).values()])


def _terms_fn(problem, z, data):
    if problem.constants or not isinstance(z, jax.core.Tracer):
        return lambda v: _terms(problem, z, v, data)
    fn = cache.get_or_build(
        (*problem.structure_key, "terms"),
        lambda: jax.jit(cache.named(partial(_terms, problem.static()), "terms")),
    )
    return lambda v: fn(z, v, data)


def neg_hessian(problem, z, v, data):
    """−∇²_v f at (z, v) in the representation of the problem's structure."""
    st = problem.random.structure
    return st.hessian(lambda vv: joint_logdensity(problem, z, vv, data), _terms_fn(problem, z, data), v)


def factored_hessian(problem, z, v, data):
    """The structure's factorization of −∇²_v f at (z, v)."""
    return problem.random.structure.factor(neg_hessian(problem, z, v, data))


class InnerState(NamedTuple):
    v: jax.Array
    f: jax.Array
    dec: jax.Array  # ½ gᵀH⁻¹g at the point the last step was taken from (inf before the first)
    k: jax.Array


def _newton_mode(problem, z, v0, data):
    """argmax_v f(z, v) by damped Newton with the exact (structured) Hessian.

    Each pass evaluates the direction once, at the current point, and tries steps along it
    with one evaluation of f per trial (a halving loop whose first trial is the full step):
    the model appears three times in the compiled loop (gradient and Hessian, the trial, the
    start) where evaluating the direction again after each step and the first trial apart
    from the halving loop put it in six times (the loop's code was 3.5× larger, its XLA
    compilation 0.44 s of a logistic GLMM's 2.5 s). The loop stops after the step taken from
    a point whose decrement met the tolerance (that step is a free refinement).
    """
    spec = problem.random

    def f(v):
        return joint_logdensity(problem, z, v, data)

    def body(s: InnerState) -> InnerState:
        g = jax.grad(f)(s.v)
        d = spec.structure.solve(factored_hessian(problem, z, s.v, data), g)
        dec = 0.5 * jnp.dot(g, d)
        met = dec <= _INNER_TOL * (1.0 + jnp.abs(s.f))

        def accept(f_new):
            return jnp.isfinite(f_new) & (f_new >= s.f - 1e-12 * jnp.abs(s.f))

        def halve(c):
            t, _ = c
            return t * 0.5, f(s.v + 0.5 * t * d)

        # a step from a point that already meets the tolerance is a refinement: no trial needed
        t, f_new = jax.lax.while_loop(
            lambda c: ~met & ~accept(c[1]) & (c[0] > 1e-10), halve, (jnp.asarray(2.0), jnp.asarray(jnp.nan))
        )
        ok = met | accept(f_new)
        v_new = jnp.where(ok, s.v + jnp.where(met, 1.0, t) * d, s.v)
        f_keep = jnp.where(met | ~ok, s.f, f_new)
        # no acceptable step: stop here (the decrement says how far from the mode)
        return InnerState(v_new, f_keep, jnp.where(ok, dec, -jnp.abs(dec) - 1.0), s.k + 1)

    s0 = InnerState(v0, f(v0), jnp.asarray(jnp.inf), jnp.asarray(0, jnp.int32))
    s = jax.lax.while_loop(
        lambda s: (s.k < _INNER_STEPS) & (s.dec > _INNER_TOL * (1.0 + jnp.abs(s.f))) & ~jnp.isnan(s.dec),
        body,
        s0,
    )
    return s.v


def inner_mode(problem, z, data, v0=None):
    r"""The conditional mode v̂(z), differentiable in z by the implicit function theorem.

    From :math:`\nabla_v f(z, \hat v(z)) = 0`: :math:`d\hat v = H^{-1}\,\partial_z\nabla_v f\,dz`
    with :math:`H = -\nabla_v^2 f` solved by the problem's structure (a custom JVP: its rule
    is itself differentiable, so outer Hessians are exact, and linear in the tangents, so
    reverse mode transposes it).
    """
    spec = problem.random
    v0 = jnp.zeros(spec.size) if v0 is None else v0

    @jax.custom_jvp
    def mode(z, v0, data):
        return _newton_mode(problem, z, v0, data)

    @mode.defjvp
    def mode_jvp(primals, tangents):
        z, v0, data = primals
        dz, _, ddata = tangents
        v = mode(z, v0, data)

        def grad_v(zz, dd):
            return jax.grad(lambda vv: joint_logdensity(problem, zz, vv, dd))(v)

        rhs = jax.jvp(grad_v, (z, data), (dz, ddata))[1]
        return v, spec.structure.solve(factored_hessian(problem, z, v, data), rhs)

    return mode(z, v0, data)


def laplace_negloglik(problem, z, data):
    """−log L(θ(z)) with the random effects integrated out (Laplace or AGQ, full constants)."""
    spec = problem.random
    v = inner_mode(problem, z, data)
    h = neg_hessian(problem, z, v, data)
    if spec.nagq > 1:
        return -_agq_loglik(problem, z, v, h, data)
    f = joint_logdensity(problem, z, v, data)
    ld = spec.structure.logdet(spec.structure.factor(h))
    return -(f + 0.5 * spec.size * math.log(2 * math.pi) - 0.5 * ld)


def _all_terms(problem, z, v, data) -> dict:
    """Every term of the joint log-density f by name, elementwise: the observed sites'
    log-likelihood terms, and each random site's log-density and log-Jacobian."""
    spec = problem.random
    args, kwargs = problem.rebuild(data)
    rs = spec.layout
    values = {**problem.layout.constrain(z), **rs.constrain(v)}
    tr = npa.trace_with_values(problem.prior_free_model, args, kwargs, values)
    out = {name: t[0] for name, t in npa.loglik_terms(tr, problem.sites.observed).items()}
    unc = rs.unravel(v)
    for site in rs.sites:
        u = unc[site.name]
        out["~lp:" + site.name] = npa.site_log_prob(tr, site.name)
        out["~jac:" + site.name] = jnp.asarray(site.transform.log_abs_det_jacobian(u, site.transform(u)))
    return out


def fixed_part_negloglik(problem, z, data):
    """−log p(y | θ(z), u = u(0)): the observed terms with the random effects at the origin of
    their unconstrained space (zero for real-valued effects), their densities left out; the
    objective of the fixed-part start (a GLM fit, as lme4's glmer starts from one)."""
    terms = _all_terms(problem, z, jnp.zeros(problem.random.size), data)
    return -sum(jnp.sum(t) for name, t in terms.items() if not name.startswith("~"))


def _group_terms(problem, z, v, data):
    """f_g: the joint log-density's terms of each group (G,): the group's observations,
    the group's random-effect density and its log-Jacobian."""
    spec = problem.random
    terms = _all_terms(problem, z, v, data)
    per_group = jnp.zeros(spec.n_groups)
    for name, groups in spec.obs_groups:
        t = jnp.ravel(terms[name])
        g = jnp.asarray(np.ravel(groups))
        per_group = per_group.at[jnp.where(g >= 0, g, 0)].add(jnp.where(g >= 0, t, 0.0))
    return per_group


def _agq_groups(problem, z, v, h, data):
    """log L_g by adaptive quadrature (G,), and the terms in no group (taken at the mode)."""
    spec = problem.random
    if spec.block > 1:
        return _agq_groups_vector(problem, z, v, h, data)
    x, w = np.polynomial.hermite.hermgauss(spec.nagq)
    sd = 1.0 / jnp.sqrt(jnp.reshape(h, (-1,)))  # scalar blocks: H is (G, 1, 1)
    vals = jnp.stack([_group_terms(problem, z, v + math.sqrt(2.0) * sd * xk, data) for xk in x])  # (K, G)
    logw = jnp.asarray(np.log(w) + x**2)[:, None]
    per_group = jnp.log(math.sqrt(2.0) * sd) + jax.scipy.special.logsumexp(vals + logw, axis=0)
    # terms that depend on no random effect do not move with v: take them at the mode
    rest = joint_logdensity(problem, z, v, data) - jnp.sum(_group_terms(problem, z, v, data))
    return per_group, rest


def _agq_groups_vector(problem, z, v, h, data):
    r"""Adaptive quadrature for q ≤ 3 coordinates per group: the product grid centred at each
    group's mode and scaled by :math:`\sqrt2\,R_g^{-\top}` with :math:`R_g R_g^\top = H_g`
    (a Cholesky factor of :math:`H_g^{-1}` up to the √2),

    .. math:: \log L_g = \log|\det \sqrt2 R_g^{-\top}| + \operatorname{logsumexp}_k
              \big[f_g(\hat v_g + \sqrt2 R_g^{-\top} x_k) + \log w_k + |x_k|^2\big],

    the nodes evaluated as one vmapped program (one copy of the model, not K)."""
    spec = problem.random
    st = spec.structure
    q = st.block
    nodes, logw = agq_grid(spec.nagq, q)
    R = jnp.linalg.cholesky(0.5 * (h + jnp.swapaxes(h, -1, -2)))  # (G, q, q), lower
    eye = jnp.broadcast_to(jnp.eye(q), R.shape)
    S = math.sqrt(2.0) * jnp.swapaxes(jax.scipy.linalg.solve_triangular(R, eye, lower=True), -1, -2)

    def at(xk):
        return _group_terms(problem, z, v + st.scatter(jnp.einsum("gij,j->gi", S, xk)), data)

    vals = jax.vmap(at)(jnp.asarray(nodes))  # (K, G)
    logdet = 0.5 * q * math.log(2.0) - jnp.sum(jnp.log(jnp.diagonal(R, axis1=-2, axis2=-1)), axis=-1)
    per_group = logdet + jax.scipy.special.logsumexp(vals + jnp.asarray(logw)[:, None], axis=0)
    rest = joint_logdensity(problem, z, v, data) - jnp.sum(_group_terms(problem, z, v, data))
    return per_group, rest


def _agq_loglik(problem, z, v, h, data):
    per_group, rest = _agq_groups(problem, z, v, h, data)
    return jnp.sum(per_group) + rest


def group_loglik(problem, z, data):
    """The marginal log-likelihood of each group, :math:`\\log L_g(\\theta(z))`, shape (G,).

    Needs block-diagonal structure and the term groups (:func:`with_unit_groups`); the
    terms in no group were checked to vanish there, so ``sum(group_loglik) == −negloglik``.
    """
    spec = problem.random
    v = inner_mode(problem, z, data)
    h = neg_hessian(problem, z, v, data)
    if spec.nagq > 1:
        return _agq_groups(problem, z, v, h, data)[0]
    ld = spec.structure.group_logdet(h)  # (G,), NaN where a block is not positive definite
    q = jnp.asarray(np.bincount(spec.groups, minlength=spec.n_groups), dtype=jnp.float64)
    return _group_terms(problem, z, v, data) + 0.5 * q * math.log(2 * math.pi) - 0.5 * ld


def conditional(problem, z, data):
    """Conditional modes (constrained) and conditional SDs of the random effects at z; for
    REML's fixed effects also their conditional covariance and ∂(estimate)/∂z.

    The SDs are :math:`\\sqrt{\\operatorname{diag} H^{-1}}` mapped to the constrained scale by
    the delta method: lme4's ``condVar`` (conditional on the estimate; glmmTMB's ``condVar`` adds the
    propagated uncertainty of the fixed parameters, as TMB's ``sdreport`` does).
    """
    spec = problem.random
    v = inner_mode(problem, z, data)
    fac = factored_hessian(problem, z, v, data)
    var_v = spec.structure.inv_diag(fac)
    rs = spec.layout
    jac_diag = (
        jnp.diag(jax.jacfwd(rs.theta)(v)) if rs.size == sum(math.prod(s.shape) for s in rs.sites) else None
    )
    theta = rs.theta(v)
    sd = jnp.sqrt(var_v) * (jnp.abs(jac_diag) if jac_diag is not None else 1.0)
    idx = restricted_coords(spec)
    if idx.size:  # REML's fixed effects: their block of H⁻¹ (identity bijections: v = θ there)
        cov = _solve_block(spec, fac, idx)
        # and how their conditional estimate moves with the variance parameters (the implicit
        # derivative of the inner mode), for the covariance that carries their uncertainty
        jac = jax.jacfwd(lambda zz: inner_mode(problem, zz, data))(z)[idx]
    else:
        cov, jac = jnp.zeros((0, 0)), jnp.zeros((0, z.shape[0]))
    return theta, sd, cov, jac


def _solve_block(spec, fac, idx):
    unit = jnp.zeros((idx.size, spec.size)).at[jnp.arange(idx.size), idx].set(1.0)
    cov = jax.vmap(lambda e: spec.structure.solve(fac, e))(unit)[:, idx]
    return 0.5 * (cov + cov.T)


def restricted_cov(problem, z, data, idx):
    """C(z): the restricted (REML) sites' block of the inverse joint Hessian at the conditional
    mode, the covariance of their estimate given the variance parameters z (traceable and
    differentiable in z: Satterthwaite's degrees of freedom differentiate it)."""
    spec = problem.random
    v = inner_mode(problem, z, data)
    return _solve_block(spec, factored_hessian(problem, z, v, data), idx)


def restricted_coords(spec) -> np.ndarray:
    """Coordinates of ``spec.layout`` that belong to the restricted (REML) sites."""
    out = [np.arange(b.z.start, b.z.stop) for b in spec.layout.blocks() if b.site.name in spec.restricted]
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)


# --------------------------------------------------------------------------- structure at bind time
def random_spec(problem, random_layout: Layout, plates_of: dict, nagq: int, z0, data) -> RandomSpec:
    """Choose the inner Hessian's structure once: block-diagonal over one shared plate, else
    sparse over the plates' factors (crossed, nested), else dense; each candidate is checked
    numerically (Hessian-vector products at a random point) before it is used."""
    q = random_layout.size
    problem = problem._replace(random=RandomSpec(random_layout, Dense(q), nagq))
    structure = _block_candidate(random_layout, plates_of)
    if structure is not None and not _verified(problem, structure, z0, data):
        structure = None
    if structure is None and nagq <= 1:
        structure = _sparse_candidate(problem, random_layout, plates_of, z0, data)
    if structure is None:
        if q > DENSE_MAX:
            raise ValueError(
                f"random: {q} random-effect coordinates without a block-diagonal or sparse structure "
                "(terms that touch several levels of one plate, or effects outside any plate): "
                f"expected at most {DENSE_MAX} for the dense inner Hessian"
            )
        check_dense_memory(q, problem.nobs, problem.layout.size)
        structure = Dense(q)
    spec = RandomSpec(random_layout, structure, nagq)
    if nagq > 1:
        if not spec.blocked or spec.block > AGQ_MAX_BLOCK:
            raise ValueError(
                f"nagq={nagq}: adaptive Gauss–Hermite quadrature needs the random effects of one "
                f"grouping factor with at most {AGQ_MAX_BLOCK} coordinates per group (independent "
                "groups; crossed or nested effects are refused, as by lme4 and GLMMadaptive); got "
                f"{[(s.name, s.shape) for s in random_layout.sites]}"
                + (f" ({spec.block} per group)" if spec.blocked else "")
                + "; use nagq=1 (Laplace)"
            )
        nodes = len(agq_grid(nagq, spec.block)[1])
        if nodes * problem.nobs > AGQ_MAX_TANGENTS:
            raise ValueError(
                f"nagq={nagq}: {nodes} quadrature nodes per group ({nagq}^{spec.block}, pruned) × "
                f"{problem.nobs} rows is more than this fit evaluates at once ({AGQ_MAX_TANGENTS:.0e}); "
                "expected a smaller nagq for vector random effects"
            )
        spec = spec._replace(obs_groups=_term_groups(problem._replace(random=spec), z0, data)[0])
    return spec


# Adaptive quadrature: coordinates per group at most (a product grid of nagq^q nodes), the
# relative weight below which a product node is pruned, and nodes × rows evaluated at once.
AGQ_MAX_BLOCK = 3
AGQ_PRUNE = 1e-14
AGQ_MAX_TANGENTS = 5e7


@functools.cache
def agq_grid(nagq: int, q: int) -> tuple[np.ndarray, np.ndarray]:
    """The product Gauss–Hermite grid in q dimensions: nodes (K, q) and log weights (K,) with
    the Gaussian factor divided out (log w + |x|²), nodes whose weight is below ``AGQ_PRUNE``
    of the largest dropped (their share of a near-Gaussian integral is at that level)."""
    x, w = np.polynomial.hermite.hermgauss(nagq)
    grids = np.meshgrid(*([x] * q), indexing="ij")
    nodes = np.stack([gr.ravel() for gr in grids], axis=1)
    logw = np.sum(np.log(np.stack(np.meshgrid(*([w] * q), indexing="ij"), axis=-1)), axis=-1).ravel()
    keep = logw >= logw.max() + math.log(AGQ_PRUNE)
    return nodes[keep], logw[keep] + np.sum(nodes[keep] ** 2, axis=1)


def _block_candidate(random_layout: Layout, plates_of: dict):
    """Block-diagonal structure over a plate every random site shares, or None."""
    if not random_layout.size:
        return None
    shared = set.intersection(*(set(plates_of[s.name]) for s in random_layout.sites))
    if not shared:
        return None
    plate = sorted(shared)[0]
    colors_l, groups_l, offset, n_groups = [], [], 0, 0
    for s in random_layout.sites:
        axis = plates_of[s.name][plate]
        shape = s.unconstrained_shape
        if len(shape) <= axis or tuple(shape) != tuple(s.shape):
            return None
        idx = np.indices(shape).reshape(len(shape), -1)
        g = idx[axis]
        within = (
            np.ravel_multi_index(np.delete(idx, axis, axis=0), np.delete(shape, axis))
            if len(shape) > 1
            else np.zeros_like(g)
        )
        colors_l.append(within + offset)
        groups_l.append(g)
        offset += int(np.max(within)) + 1 if within.size else 0
        n_groups = shape[axis]
    return BlockDiagonal(np.concatenate(colors_l), np.concatenate(groups_l), int(n_groups), plate)


def _verified(problem, structure, z0, data, seed: int = 0) -> bool:
    """The structure's Hessian reproduces exact Hessian-vector products at a random point."""
    spec = problem.random._replace(structure=structure)
    problem = problem._replace(random=spec)
    rng = np.random.default_rng(seed)
    v = jnp.asarray(0.1 * rng.normal(size=spec.size))
    r = jnp.asarray(rng.normal(size=spec.size))

    def check(z0, v, r, data):
        grad_v = jax.grad(lambda vv: joint_logdensity(problem, z0, vv, data))
        full = jax.jvp(grad_v, (v,), (r,))[1]
        approx = -structure.matvec(neg_hessian(problem, z0, v, data), r)
        return jnp.max(jnp.abs(full - approx)), jnp.max(jnp.abs(full))

    problem = problem.static()  # what the cached program keeps (check reads it when traced)
    prog = cache.get_or_build(
        (*problem.structure_key, "structure-check"),
        lambda: cache.jit(check, hoist=problem.constants, name="structure_check"),
    )
    err, scale = prog(z0, v, r, data)
    return bool(np.isfinite(float(err)) and err <= 1e-8 * (float(scale) + 1e-300))


def _factors(random_layout: Layout, plates_of: dict) -> list[Factor]:
    """The grouping factors: random-effect coordinates over the cells of the same plates
    (sites in the same plates share a factor; a site in no plate is a factor of one level)."""
    found: dict = {}
    for b in random_layout.blocks():
        s = b.site
        shape = tuple(s.unconstrained_shape)
        idx = np.arange(b.z.start, b.z.stop).reshape(shape)
        plates = sorted(plates_of.get(s.name, {}).items())
        if any(ax >= len(shape) or shape[ax] != s.shape[ax] for _, ax in plates):
            plates = []
        axes = [ax for _, ax in plates]
        key = tuple((name, shape[ax]) for name, ax in plates) or (("", s.name),)
        levels = math.prod(shape[ax] for ax in axes)
        coords = np.moveaxis(idx, axes, list(range(len(axes)))).reshape(levels, -1)
        found.setdefault(key, []).append(coords)
    return [
        Factor("×".join(n for n, _ in key) if key[0][0] else key[0][1], np.concatenate(cs, axis=1))
        for key, cs in found.items()
    ]


def _sparse_candidate(problem, random_layout: Layout, plates_of: dict, z0, data):
    """The sparse structure over the plates' factors, found from the model's terms, or None."""
    factors = _factors(random_layout, plates_of)
    if len(factors) < 2:
        return None
    q = random_layout.size
    rng = np.random.default_rng(2)
    v = jnp.asarray(0.1 * rng.normal(size=q))
    t1 = np.zeros((len(factors), q))
    t2 = np.zeros((len(factors), q))
    for f, fac in enumerate(factors):
        w = rng.uniform(0.5, 1.5, size=fac.positions)
        t1[f, fac.coords] = w[None, :]
        t2[f, fac.coords] = w[None, :] * (np.arange(fac.levels)[:, None] + 1.0)
    pr = problem.static()

    def probe(z0, v, t1, t2, data):
        def terms(vv):
            return _terms(pr, z0, vv, data)

        def d(t):
            return jax.jvp(terms, (v,), (t,))[1]

        return jax.vmap(d)(t1), jax.vmap(d)(t2)

    prog = cache.get_or_build(
        (*pr.structure_key, "levels", len(factors)),
        lambda: cache.jit(probe, hoist=pr.constants, name="term_levels"),
    )
    d1, d2 = (np.asarray(a) for a in prog(z0, v, jnp.asarray(t1), jnp.asarray(t2), data))
    scale = np.max(np.abs(d1), axis=1, keepdims=True)
    touch = np.abs(d1) > 1e-13 * (scale + 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(touch, d2 / np.where(touch, d1, 1.0), 0.0)
    lv = np.rint(ratio)
    sizes = np.array([fac.levels for fac in factors])[:, None]
    if np.any(touch & ((np.abs(ratio - lv) > 1e-6 * np.maximum(1.0, np.abs(lv))) | (lv < 1) | (lv > sizes))):
        return None  # a term touching several levels of one factor
    levels = np.where(touch, lv - 1, -1).astype(np.int64).T  # (T, F)
    structure = sparse_pattern(factors, levels, q)
    if structure is None:
        return None
    check_sparse_memory(structure, problem.layout.size)
    return structure if _verified(problem, structure, z0, data, seed=3) else None


# Peak memory of a sparse-path fit per entry of (term curvatures + Schur complement + pairs or
# dense B) and per (1 + p) outer directions, plus the process and its compiled programs:
# measured 2.1 GB resident for the InstEval-sized fit (p = 5; 3.4·10⁶ entries) and 11.8 GB for
# the MovieLens-sized one (p = 5; 4.0·10⁷ entries), i.e. 48 bytes and about 1 GB.
SPARSE_BYTES = 48
SPARSE_BASE = 1_000_000_000


def sparse_memory(structure: Sparse, p: int) -> int:
    """Estimated peak bytes of a Laplace fit on the sparse path (see ``SPARSE_BYTES``)."""
    t = structure.a_ids.size
    pairs = structure.pairs[0].size if structure.pairs else structure.g1 * structure.q1 * structure.m
    entries = t * structure.n_colors**2 + structure.rest_storage + pairs
    return int(SPARSE_BYTES * (1 + p) * entries + SPARSE_BASE)


def check_sparse_memory(structure: Sparse, p: int) -> None:
    """Refuse, before anything is allocated, a sparse-path fit that would not fit in memory."""
    need, have = sparse_memory(structure, p), available_memory()
    if need > MEMORY_FRACTION * have:
        raise MemoryError(
            f"random: the sparse Laplace path ({structure.kind}; Schur complement onto {structure.m} "
            f"coordinates) needs about {need / 1e9:.3g} GB, expected at most {MEMORY_FRACTION:.0%} of "
            f"the {have / 1e9:.3g} GB available; set MLEPPL_MAX_MEMORY (bytes) if more memory is "
            "really free"
        )


# Peak memory of a dense-path fit per (observation × random-effect coordinate) and per
# (1 + p)² outer directions: measured 520–546 bytes at p = 3 (crossed logistic GLMMs of
# 2,000 × 90, 4,000 × 180 and 8,000 × 360: 0.74, 1.03, 2.15 GB resident), i.e. 32·(1 + p)².
DENSE_BYTES = 32
# Refuse the dense path where its estimate passes this fraction of the available memory.
MEMORY_FRACTION = 0.6


def available_memory() -> int:
    """Bytes available to this process: ``MLEPPL_MAX_MEMORY`` if set, else the kernel's
    ``MemAvailable`` (Linux), else the physical memory."""
    import os

    env = os.environ.get("MLEPPL_MAX_MEMORY")
    if env:
        return int(float(env))
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def dense_memory(q: int, nobs: int, p: int) -> int:
    """Estimated peak bytes of a Laplace fit on the dense inner Hessian (see ``DENSE_BYTES``)."""
    return int(DENSE_BYTES * (1 + p) ** 2 * (nobs * q + q * q))


def check_dense_memory(q: int, nobs: int, p: int) -> None:
    """Refuse, before anything is allocated, a dense-path fit that would not fit in memory
    (a crossed logistic GLMM of 40,000 rows and 900 effects grew past 22 GB)."""
    need, have = dense_memory(q, nobs, p), available_memory()
    if need > MEMORY_FRACTION * have:
        raise MemoryError(
            f"random: the dense Laplace path for {q} random-effect coordinates without "
            f"block-diagonal structure over {nobs} observations and {p} parameters needs about "
            f"{need / 1e9:.1f} GB (32·(1 + p)²·(rows·q + q²) bytes, measured), expected at most "
            f"{MEMORY_FRACTION:.0%} of the {have / 1e9:.1f} GB available; fewer levels or "
            "observations fit, or set MLEPPL_MAX_MEMORY (bytes) if more memory is really free"
        )


def _term_groups(problem, z0, data):
    """Group of each element of each term of f (−1: depends on no group), and the size of
    what lies outside the groups at a probe point (terms in no group and factor sites)."""
    spec = problem.random
    rng = np.random.default_rng(1)
    v = jnp.asarray(0.1 * rng.normal(size=spec.size))
    ones = jnp.ones(spec.size)
    ids = jnp.asarray(spec.groups, dtype=jnp.float64) + 1.0

    def both(z0, v, data):
        def terms(vv):
            return _all_terms(problem, z0, vv, data)

        t, d1 = jax.jvp(terms, (v,), (ones,))
        d2 = jax.jvp(terms, (v,), (ids,))[1]
        return t, d1, d2, joint_logdensity(problem, z0, v, data)

    problem = problem.static()
    prog = cache.get_or_build(
        (*problem.structure_key, "term-groups"),
        lambda: cache.jit(both, hoist=problem.constants, name="term_groups"),
    )
    t, d1, d2, joint = prog(z0, v, data)
    out, outside = [], float(joint)
    for name in t:
        a, b, val = np.asarray(d1[name]), np.asarray(d2[name]), np.asarray(t[name])
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.where(np.abs(a) > 1e-300, np.rint(b / a) - 1, -1).astype(int)
        out.append((name, g))
        outside -= float(np.sum(np.where(g >= 0, val, 0.0)))
    return tuple(out), outside, abs(float(joint))


def with_unit_groups(problem, z):
    """The problem with its groups ready to serve as independent units (scores, bootstrap).

    Raises
    ------
    ValueError
        Random effects without block-diagonal structure (crossed, or over several plates),
        or observations (or ``factor`` terms) that belong to no group.
    """
    spec = problem.random
    if not spec.blocked:
        raise ValueError(
            f"random={[s.name for s in spec.layout.sites]}: crossed random effects (or effects over "
            "several plates) leave no independent groups, so there are no group-level scores; "
            "expected kind='oim' (with_cov) or kind='parametric' (bootstrap)"
        )
    if spec.units:
        return problem
    # the program of the bind-time check (nagq > 1) is keyed on the spec without its groups
    bare = problem._replace(random=spec._replace(obs_groups=()))
    groups, outside, scale = _term_groups(bare, jnp.asarray(z), problem.data)
    if abs(outside) > 1e-8 * (1.0 + scale):
        raise ValueError(
            f"random: the log-likelihood has terms outside the '{spec.plate}' groups (observations "
            "with no random effect, or factor sites): expected every term in one group for "
            "group-level scores; use kind='oim' (with_cov) or kind='parametric' (bootstrap)"
        )
    return problem._replace(random=spec._replace(obs_groups=groups, units=True))


def fixed_design(problem, params: dict, at: dict) -> np.ndarray:
    """d(mean of every observed site)/d(restricted sites) at ``at`` (the restricted sites'
    values), the random effects at 0 and the other sites at ``params``: the fixed-effect
    design of a REML fit (for an LMM its model matrix X; for a GLMM X scaled by row), which
    decides whether two REML fits have the same fixed effects."""
    spec = problem.random
    args, kwargs = problem.rebuild(problem.data)
    model = problem.prior_free_model
    names = list(spec.restricted)
    base = {k: jnp.asarray(v) for k, v in params.items() if k not in names}
    for s in spec.layout.sites:
        if s.name not in names:
            base[s.name] = s.transform(jnp.zeros(s.unconstrained_shape))
    shapes = [np.shape(at[n]) for n in names]
    sizes = [math.prod(sh) for sh in shapes]
    flat0 = jnp.concatenate([jnp.ravel(jnp.asarray(at[n], dtype=jnp.float64)) for n in names])

    def means(flat):
        parts, i = {}, 0
        for n, sh, k in zip(names, shapes, sizes):
            parts[n] = jnp.reshape(flat[i : i + k], sh)
            i += k
        tr = npa.trace_with_values(model, args, kwargs, {**base, **parts})
        return jnp.concatenate([jnp.ravel(tr[o]["fn"].mean) for o in problem.sites.observed])

    return np.asarray(jax.jacfwd(means)(flat0))
