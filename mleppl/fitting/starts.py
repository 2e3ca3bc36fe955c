"""Start values: ``init``, the default start, prior medians, random starts; the multi-start table."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..adapters import numpyro as npa
from ..core.records import InverseInformation
from ..core.status import succeeded
from ..model.problem import badly_scaled_args, nonfinite_args

__all__ = [
    "check_init",
    "start",
    "fixed_part_start",
    "no_start_error",
    "scale_note",
    "optima_table",
    "MAX_INIT_ATTEMPTS",
    "FIXED_START_ROWS",
]

MAX_INIT_ATTEMPTS = 20
# A marginal (random=) fit of at least this many rows starts from the fixed-part fit: each
# Laplace step there costs more than compiling and running that small fit (InstEval-sized
# crossed LMM: 11 → 7 outer steps, 11.2 → 7.2 s warm).
FIXED_START_ROWS = 10_000
_FIXED_START_ITERS = 30


def fixed_part_start(problem, z0: jax.Array) -> jax.Array:
    """The default start of a marginal fit moved to the maximum of log p(y | θ, u = 0): the
    fixed effects and the observation-level parameters at their GLM values, the random-effect
    scales (which that likelihood does not involve) where ``z0`` has them. Newton steps on the
    absolute eigenvalues of the Hessian (directions of zero curvature, such as those scales,
    left alone), halved until the objective falls; ``z0`` where that fit fails."""
    from ..core import cache
    from ..model import latent

    pr = problem.static()

    def run(z0, data):
        def f(z):
            return latent.fixed_part_negloglik(pr, z, data)

        def body(c):
            z, fz, k, _ = c
            g, h = jax.grad(f)(z), jax.hessian(f)(z)
            w, vec = jnp.linalg.eigh(0.5 * (h + h.T))
            w = jnp.abs(w)
            keep = w > 1e-10 * jnp.max(w)
            d = -vec @ (jnp.where(keep, 1.0 / jnp.where(keep, w, 1.0), 0.0) * (vec.T @ g))

            def halve(t):
                return t[0] * 0.5, f(z + 0.5 * t[0] * d)

            t, f_new = jax.lax.while_loop(
                lambda t: ~(t[1] < fz) & (t[0] > 1e-8), halve, (jnp.asarray(1.0), f(z + d))
            )
            ok = jnp.isfinite(f_new) & (f_new < fz)
            small = -jnp.dot(g, d) <= 1e-10 * (1.0 + jnp.abs(fz))
            return jnp.where(ok, z + t * d, z), jnp.where(ok, f_new, fz), k + 1, small | ~ok

        c0 = (z0, f(z0), jnp.asarray(0), jnp.asarray(False))
        z, fz, _, _ = jax.lax.while_loop(lambda c: (c[2] < _FIXED_START_ITERS) & ~c[3], body, c0)
        return jnp.where(jnp.all(jnp.isfinite(z)) & jnp.isfinite(fz), z, z0)

    prog = cache.get_or_build(
        (*pr.structure_key, "fixed-start"), lambda: cache.jit(run, hoist=pr.constants, name="fixed_start")
    )
    return prog(z0, problem.data)


def check_init(init: dict, problem) -> dict:
    """``init`` validated against the free sites: known names, shapes, values inside the support."""
    free = {s.name: s for s in problem.sites.free}
    out = {}
    for name, value in init.items():
        if name not in free:
            raise ValueError(f"init: unknown site '{name}'; expected one of the free sites {sorted(free)}")
        s = free[name]
        v = jnp.asarray(np.asarray(value, dtype=np.float64))
        if v.shape != s.shape:
            try:
                v = jnp.broadcast_to(v, s.shape)
            except ValueError:
                raise ValueError(
                    f"init['{name}']: expected shape {s.shape}, got {tuple(np.shape(value))}"
                ) from None
        ok = bool(np.all(np.asarray(s.support(v)))) and bool(np.all(np.isfinite(np.asarray(v))))
        if not ok:
            raise ValueError(
                f"init['{name}']: expected a value inside the support {s.support}, got {np.asarray(value)}"
            )
        out[name] = v
    return out


def start(problem, init: dict, rng_key, attempt: int, *, jitter: bool = True) -> jax.Array:
    """The flat unconstrained start of attempt ``attempt``.

    Attempt 0: ``init`` where given, else near the origin of the unconstrained
    space (zero coefficients, unit scales, uniform simplexes, a classic start for
    regression-type likelihoods). Not exactly at it: JAX differentiates NumPyro's
    logit-parametrized log-densities wrongly at logit == 0 (the kinks of
    max(x, 0) and |x| tie there), so a fixed jitter of at most 1e-3 breaks the
    tie. ``numpyro.param`` sites start at their declared value. Attempt 1: the
    prior median; later attempts: random points. ``init`` overrides every
    attempt for the sites it names.
    """
    layout = problem.layout
    if attempt == 0:
        shift = 1e-3 * np.cos(2.399963 * np.arange(1, layout.size + 1)) * float(jitter)
        fixed = dict(problem.sites.param_values)
        fixed.update(init)
        return jnp.asarray(layout.with_blocks(shift, fixed))
    args, kwargs = problem.rebuild(problem.data)
    try:
        tr = npa.initial_values(problem.require_model(), args, kwargs, rng_key, attempt - 1)
    except Exception:  # noqa: BLE001 - the model rejects its own draw (e.g. a Gamma rate < 0)
        # a uniform draw in (-2, 2) on the unconstrained scale, made without the model: the fit
        # program then judges it (a non-finite log-likelihood there is the next attempt)
        u = jax.random.uniform(
            jax.random.fold_in(rng_key, 10_000 + attempt), (layout.size,), minval=-2, maxval=2
        )
        fixed = dict(problem.sites.param_values)
        fixed.update(init)
        return jnp.asarray(layout.with_blocks(np.asarray(u, dtype=np.float64), fixed))
    values = npa.free_values(tr, [s.name for s in problem.sites.free])
    values.update(init)
    return layout.unconstrain(values)


def no_start_error(problem) -> ValueError:
    pairs = problem.arrays()
    bad = nonfinite_args([lab for lab, _ in pairs], [a for _, a in pairs])
    if bad:
        return ValueError(
            "the log-likelihood is not finite: expected finite covariates, got non-finite "
            f"values in argument(s) {', '.join(bad)} (drop or impute those rows)"
        )
    scaled = scale_note(problem)
    if scaled:
        return ValueError(f"no start found where the log-likelihood and its gradient are finite: {scaled}")
    return ValueError(
        f"no start found where the log-likelihood and its gradient are finite in "
        f"{MAX_INIT_ATTEMPTS} attempts; pass init= with a valid start"
    )


def scale_note(problem) -> str:
    """What to tell a user whose data are in units float64 cannot differentiate in ("" if none)."""
    pairs = problem.arrays()
    bad = badly_scaled_args([lab for lab, _ in pairs], [a for _, a in pairs])
    if not bad:
        return ""
    return (
        f"expected data in moderate units, got argument(s) {', '.join(bad)}: products of such "
        "values in the likelihood and its derivatives overflow (or underflow) float64 (largest "
        "1.8e308), so no start value can help; rescale those arguments (e.g. to unit standard "
        "deviation) and the estimates back afterwards"
    )


def optima_table(status, value, zs, best: int, inv: InverseInformation) -> tuple[pd.DataFrame, int]:
    """One row per start: log-likelihood, converged, distance to the best in standard errors,
    the id of the distinct optimum it reached; and the number of distinct optima."""
    n_starts = len(value)
    conv = succeeded(status)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(np.abs(np.diag(inv.cov)))
        dist_se = np.nanmax(np.abs(zs - zs[best]) / np.where(se > 0, se, np.nan), axis=1)
    ll = -value
    tol_ll = 1e-6 * (1.0 + abs(ll[best]))
    ids, reps = np.full(n_starts, -1), []
    for i in np.argsort(value):
        if not np.isfinite(value[i]):
            continue
        for j, r in enumerate(reps):
            if (
                abs(ll[i] - ll[r]) <= tol_ll
                and np.nanmax(np.abs(zs[i] - zs[r]) / np.where(se > 0, se, 1.0)) <= 1e-3
            ):
                ids[i] = j
                break
        else:
            ids[i] = len(reps)
            reps.append(i)
    table = pd.DataFrame(
        {
            "loglik": ll,
            "converged": conv,
            "distance_se": dist_se,
            "optimum": ids,
            "best": np.arange(n_starts) == best,
        },
        index=pd.RangeIndex(n_starts, name="start"),
    )
    return table, len(reps)
