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

__all__ = ["check_init", "start", "no_start_error", "scale_note", "optima_table", "MAX_INIT_ATTEMPTS"]

MAX_INIT_ATTEMPTS = 20


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
