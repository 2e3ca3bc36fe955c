"""``fit_many``: one model fitted to many datasets in one compiled, batched program.

Genomics fits one negative-binomial GLM per gene; simulation studies, toys and per-subject
fits have the same shape. The datasets share the model and the shapes of their arrays; the
arguments named in ``batched`` carry a leading batch axis, the rest are shared. Every fit
runs a line-search Newton under ``jax.vmap`` (in chunks), and the few it does not settle
are refitted with ``fit_mle``'s trust-region Newton; each fit has its own status: a failed
fit is a recorded status, never an abort of the others.
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..core.blas import single_threaded_blas
from ..core.options import fit_options, positive_int
from ..core.records import frozen_array, frozen_dict
from ..core.status import Status, succeeded
from ..core.warnings import ConvergenceWarning, HessianWarning
from ..core.x64 import float64
from ..model.inputs import as_rng_key, split_inputs
from ..model.problem import bind
from ..result import MLEResult
from ..solvers.batched import BOUNDARY_Z
from ..uncertainty.diagnose import SE_RATIO, large_se
from ..uncertainty.information import delta_se_many, invert_information_many
from .assemble import assemble, find_issues
from .program import POOL_BLOCK, bounded_mask, many_program, pool_lanes, pool_program, resolve_method
from .starts import check_init, start

__all__ = ["fit_many", "BatchResult"]


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class BatchResult:
    """Many maximum-likelihood fits of one model.

    Attributes
    ----------
    params, se : Mapping[str, ndarray]
        Site → estimates / standard errors with a leading batch axis ``(B, *site shape)``.
    loglik : ndarray
        ``(B,)`` maximized log-likelihoods.
    converged : ndarray
        ``(B,)`` bool.
    status : ndarray
        ``(B,)`` int :class:`mleppl.Status` codes (``Status(code).message`` says what happened).
    param_names : list of str
        Labels of the flattened parameters.

    ``res[i]`` is the i-th fit as an ordinary :class:`MLEResult` (with the diagnosis run on
    it); ``summary()`` is a tidy table, one row per fit and parameter.
    """

    params: Mapping[str, np.ndarray]
    se: Mapping[str, np.ndarray]
    loglik: np.ndarray
    converged: np.ndarray
    status: np.ndarray
    param_names: list
    estimate: np.ndarray  # (B, k) flat
    bse: np.ndarray  # (B, k) flat
    _fit_one: Callable = dataclasses.field(repr=False, compare=False, default=None)

    def __len__(self) -> int:
        return int(self.loglik.shape[0])

    def __getitem__(self, i: int) -> MLEResult:
        n = len(self)
        if not isinstance(i, (int, np.integer)) or not -n <= i < n:
            raise IndexError(f"fit index: expected an integer in [-{n}, {n}), got {i!r}")
        return self._fit_one(int(i) % n)

    def summary(self, *, fit_labels=None) -> pd.DataFrame:
        """One row per fit and parameter: ``fit, parameter, estimate, se, loglik, converged, status``.

        ``fit_labels`` (one per fit, e.g. gene ids) replaces the fit's index in ``fit``."""
        b, k = self.estimate.shape
        fits = np.arange(b)
        if fit_labels is not None:
            fits = np.asarray(fit_labels)
            if fits.shape != (b,):
                raise ValueError(f"fit_labels: expected {b} labels (one per fit), got shape {fits.shape}")
        return pd.DataFrame(
            {
                "fit": np.repeat(fits, k),
                "parameter": np.tile(self.param_names, b),
                "estimate": self.estimate.ravel(),
                "se": self.bse.ravel(),
                "loglik": np.repeat(self.loglik, k),
                "converged": np.repeat(self.converged, k),
                "status": np.repeat(self.status, k),
            }
        )

    def __repr__(self) -> str:
        return f"<BatchResult: {len(self)} fits, {int(self.converged.sum())} converged>"


def _batched_se(hess, jac):
    """Per fit: delta-method standard errors, unconstrained standard errors, and positive-
    definiteness, from the same inversion as ``fit_mle``'s
    (:func:`~mleppl.uncertainty.information.invert_information_many`), so ``res.se`` and
    ``res[i].se`` are NaN in the same entries."""
    inv = invert_information_many(np.asarray(hess))
    se_z = np.sqrt(np.abs(np.diagonal(inv.cov, axis1=1, axis2=2)))
    return delta_se_many(np.asarray(jac), inv), se_z, inv.positive_definite


def _suspect(z, se_z, pd_ok) -> np.ndarray:
    """Fits whose information is singular or whose unconstrained standard error is huge
    relative to the estimate (the first stage of fit_mle's diagnosis, shared)."""
    return ~np.asarray(pd_ok) | large_se(z, se_z)


def _running_off_nan(layout, se_flat, z, se_z, status) -> np.ndarray:
    """``se_flat`` with NaN for every site that runs to infinity or a boundary in a fit
    reported ``DIVERGING``, as ``fit_mle``'s diagnosis does (a Wald standard error is not
    valid there: 2e-9 was reported for a dispersion of 7e-15 at its boundary 0)."""
    z, se_z = np.asarray(z), np.asarray(se_z)
    bounded = bounded_mask(layout)
    off = (
        ~np.isfinite(se_z)
        | (se_z > SE_RATIO * np.maximum(1.0, np.abs(z)))
        | (bounded & (np.abs(z) > BOUNDARY_Z))
    )
    off &= (np.asarray(status) == Status.DIVERGING)[:, None]
    out = np.array(se_flat, dtype=np.float64, copy=True)
    for b in layout.blocks():
        hit = off[:, b.z].any(axis=1)
        out[np.ix_(hit, np.arange(b.theta.start, b.theta.stop))] = np.nan
    return out


def _put(a, idx, b):
    a = np.array(a)
    a[idx] = b
    return a


def _take(x, idx: np.ndarray):
    """Rows ``idx`` of a batched argument; an array sharded along its batch axis stays
    sharded the same way (the gather runs where the data are)."""
    sharding = getattr(x, "sharding", None)
    if isinstance(x, jax.Array) and sharding is not None and len(sharding.device_set) > 1:
        if np.array_equal(idx, np.arange(x.shape[0])):
            return x
        try:
            return jax.jit(lambda a, i: a[i], out_shardings=sharding)(x, jnp.asarray(idx))
        except ValueError:  # a chunk the mesh does not divide: wherever XLA puts it
            pass
    return x[idx]


def _run_chunks(prog, leaves, axes, idx: np.ndarray, chunk: int, z0, scale, progress: bool):
    """The batched program over the fits ``idx``, ``chunk`` at a time (the last chunk padded
    with repeats, so every chunk has one shape and the program compiles once); host arrays."""
    outs = []
    for lo in range(0, idx.size, chunk):
        take = min(chunk, idx.size - lo)
        rows = np.resize(idx[lo : lo + take], chunk)  # pad the last chunk
        data = tuple(_take(x, rows) if a == 0 else x for x, a in zip(leaves, axes))
        out = jax.device_get(prog(data, z0 if np.ndim(z0) == 1 else z0[rows], scale))
        outs.append(jax.tree_util.tree_map(lambda v, t=take: np.asarray(v)[:t], out))
        if progress:
            print(f"\rfit_many: {lo + take}/{idx.size} fits", end="", file=sys.stderr, flush=True)
    return jax.tree_util.tree_map(lambda *v: np.concatenate(v), *outs)


def _run_pool(prog, leaves, axes, size: int, block: int, z0, progress: bool):
    """The pooled first stage over all fits, ``block`` fits per call (the last call padded to
    the same shape, its padding not run: one compile); host arrays."""
    outs = []
    for lo in range(0, size, block):
        take = min(block, size - lo)
        rows = np.resize(np.arange(lo, lo + take), block)
        data = tuple(_take(x, rows) if a == 0 else x for x, a in zip(leaves, axes))
        out = jax.device_get(prog(data, z0 if np.ndim(z0) == 1 else z0[rows], jnp.asarray(take, jnp.int32)))
        outs.append(jax.tree_util.tree_map(lambda v, t=take: np.asarray(v)[:t], out))
        if progress:
            print(f"\rfit_many: {lo + take}/{size} fits", end="", file=sys.stderr, flush=True)
    return jax.tree_util.tree_map(lambda *v: np.concatenate(v), *outs)


def _split_init(init: dict, problem, size: int) -> tuple[dict, dict]:
    """``init`` split into values shared by every fit and per-fit values (a leading axis of
    length ``size`` in front of the site's shape), each checked against the site's support."""
    free = {s.name: s for s in problem.sites.free}
    shared, per_fit = {}, {}
    for name, value in init.items():
        a = np.asarray(value, dtype=np.float64) if name in free else None
        if a is not None and a.ndim == len(free[name].shape) + 1 and a.shape[1:] == free[name].shape:
            if a.shape[0] != size:
                raise ValueError(
                    f"init['{name}']: expected per-fit starts of shape {(size, *free[name].shape)} "
                    f"or one start of shape {free[name].shape}, got {a.shape}"
                )
            inside = np.asarray(free[name].support(jnp.asarray(a)), dtype=bool).reshape(size, -1)
            bad = np.flatnonzero(~(inside.all(axis=1) & np.isfinite(a).reshape(size, -1).all(axis=1)))
            if bad.size:
                raise ValueError(
                    f"init['{name}']: expected values inside the support {free[name].support}, "
                    f"got {bad.size} fits outside it (first: fit {bad[0]}, {a[bad[0]]})"
                )
            per_fit[name] = a
        else:
            shared[name] = value
    return check_init(shared, problem), per_fit


def _starts(problem, z0, per_fit: dict, size: int) -> np.ndarray:
    """(size, p) unconstrained starts: ``z0`` with the per-fit sites' blocks replaced."""
    z = np.tile(np.asarray(z0, dtype=np.float64), (size, 1))
    for b in problem.layout.blocks():
        if b.site.name in per_fit:
            u = b.site.transform.inv(jnp.asarray(per_fit[b.site.name]))
            z[:, b.z] = np.asarray(u, dtype=np.float64).reshape(size, -1)
    return z


def _batch_size(values: dict) -> int:
    sizes = {name: int(np.shape(v)[0]) if np.ndim(v) else None for name, v in values.items()}
    bad = [n for n, s in sizes.items() if s is None]
    if bad:
        raise ValueError(f"batched: expected arrays with a leading batch axis, got scalars for {bad}")
    if len(set(sizes.values())) != 1:
        raise ValueError(f"batched: expected one batch size, got leading axes {sizes}")
    size = next(iter(sizes.values()))
    if size == 0:
        raise ValueError(f"batched: expected at least one dataset along the leading axis, got {sizes}")
    return size


@float64
def fit_many(
    model: Callable,
    *args,
    batched=("y",),
    method: str = "auto",
    init: dict | None = None,
    rng_key=None,
    max_steps: int | None = None,
    tol: float = 1e-12,
    chunk_size: int = 1024,
    progress: bool = False,
    **kwargs,
) -> BatchResult:
    r"""Fit one NumPyro model to many datasets at once.

    Parameters
    ----------
    model : callable
        A NumPyro model, as for :func:`mleppl.fit_mle`.
    *args, **kwargs
        The model's arguments. Those named in ``batched`` (keyword names, or positional
        parameter names of the model) hold B datasets along their leading axis; the others
        are shared by every fit.
    batched : sequence of str
        Names of the batched arguments (default ``("y",)``).
    init : dict, optional
        Start values by site, as for :func:`mleppl.fit_mle` (one start for every fit), or
        per fit: an array with the batch axis in front of the site's shape, e.g. each
        gene's log mean count as its intercept (``init={"b": B0}``, ``B0.shape == (B, p)``).
    method, rng_key, max_steps, tol
        As for :func:`mleppl.fit_mle`.
    chunk_size : int
        The most fits in flight at once (the pool's lanes are fewer where a pass over that
        many fits' data would not stay in cache, see :func:`mleppl.fitting.program.pool_lanes`;
        the trust-region refits run in batches of at most this many).
    progress : bool
        Print progress to stderr after each block of fits.

    Returns
    -------
    BatchResult
        ``params`` and ``se`` (site → ``(B, ...)``), ``loglik``, ``converged``, ``status``,
        ``summary()``, and ``res[i]`` as an :class:`MLEResult`.

    Warns
    -----
    ConvergenceWarning, HessianWarning
        Once, with the number of fits concerned ("37 of 20000 fits did not converge: see
        .status"), never once per fit.

    Notes
    -----
    Each fit :math:`b` maximizes :math:`\sum_i \log p(y_{bi} \mid x_{bi}; \theta_b)`. The fits
    run under ``jax.vmap`` through a pool of lanes (a lane whose fit stops takes the next
    one), first with a line-search Newton method (exact Hessian; at most 16 passes; a
    coordinate of a bounded site past ±30 stops its fit as ``DIVERGING``, see
    :mod:`mleppl.solvers.batched`); the fits it hands back are refitted, in lock-step
    batches, with the trust-region Newton method of :func:`mleppl.fit_mle` from the same
    start. A fit that converged with a suspect standard error (an estimate running to
    infinity or a boundary) is reported ``DIVERGING``. Both solvers stop on
    ``fit_mle``'s convergence test, :math:`\lambda^2/2 = \tfrac12 g^\top H^{-1} g \le`
    ``tol`` at a positive-definite :math:`H`. Standard errors come from
    each fit's observed information, as in :func:`mleppl.fit_mle`. The after-fit diagnosis
    (separation, boundaries) runs when a single fit is taken out with ``res[i]``.

    Examples
    --------
    >>> import jax.numpy as jnp, numpy as np, numpyro, numpyro.distributions as dist
    >>> import mleppl
    >>> def poisson(x, y=None):
    ...     b = numpyro.sample("b", dist.Normal(0, 5).expand([2]).to_event(1))
    ...     with numpyro.plate("n", x.shape[0]):
    ...         numpyro.sample("y", dist.Poisson(jnp.exp(b[0] + b[1] * x)), obs=y)
    >>> x = np.linspace(-1, 1, 50)
    >>> ys = np.random.default_rng(0).poisson(np.exp(0.5 + 0.3 * x), size=(100, 50)).astype(float)
    >>> res = mleppl.fit_many(poisson, x, y=ys)
    >>> res.params["b"].shape, bool(res.converged.all())
    ((100, 2), True)
    >>> one = mleppl.fit_mle(poisson, x, y=ys[7])
    >>> bool(np.allclose(res.params["b"][7], one.params["b"], rtol=1e-8))
    True
    """
    if isinstance(batched, str):
        batched = (batched,)
    batched = tuple(batched)
    # the same checks (and words) as fit_mle's: a misspelt method used to run Newton
    method, max_steps, tol, _ = fit_options(method=method, max_steps=max_steps, tol=tol)
    chunk_size = positive_int("chunk_size", chunk_size)
    inputs = split_inputs(model, args, kwargs)
    names = [lab.strip("'").split("[")[0] for lab in inputs.labels]
    unknown = [b for b in batched if b not in names]
    if unknown:
        raise ValueError(
            f"batched: expected names of array arguments among {sorted(set(names))}, got {unknown}"
        )
    axes = tuple(0 if n in batched else None for n in names)
    size = _batch_size({lab: x for lab, x, a in zip(inputs.labels, inputs.leaves, axes) if a == 0})

    def dataset(i: int):
        return tuple(x[i] if a == 0 else x for x, a in zip(inputs.leaves, axes))

    init_per_fit: dict = {}
    init_shared = dict(init or {})

    def bind_one(i: int):
        a, k = inputs.spec.rebuild(tuple(np.asarray(x) for x in dataset(i)))
        return bind(model, a, k, key, init={**init_shared, **{n: v[i] for n, v in init_per_fit.items()}})

    with single_threaded_blas():
        key = as_rng_key(rng_key)
        init_shared = {}
        problem = bind_one(0)  # without init: per-fit starts are told apart by the sites' shapes
        if problem.constants:
            raise ValueError(
                "model: fit_many batches the datasets as traced inputs of one compiled program; "
                "expected a model that can be traced with its data (jax.numpy on data arguments), "
                f"got one whose data must be held as constants ({problem.spec.constants}); write "
                "its data transformations with jax.numpy, or fit each dataset with fit_mle in a loop"
            )
        init_c, init_per_fit = _split_init(init or {}, problem, size)
        init_shared = {n: v for n, v in (init or {}).items() if n not in init_per_fit}
        if init_shared:
            problem = bind_one(0)
        if method == "svi":
            raise ValueError(
                "method: expected one of the exact methods for fit_many, got 'svi' (use fit_mle)"
            )
        meth = resolve_method(method, problem.nobs, problem.layout.size)
        z0 = start(problem, init_c, key, 0)
        if init_per_fit:
            z0 = _starts(problem, z0, init_per_fit, size)
        z_axis = 0 if np.ndim(z0) == 2 else None
        steps = None if max_steps is None else int(max_steps)
        scale = jnp.asarray(float(problem.nobs))
        # the cheap line-search Newton first, on every fit; the fits it gives up are refitted
        # with fit_mle's own method
        if meth == "newton":
            # fits in flight: a cache-sized pool (see pool_lanes); calls of POOL_BLOCK pools
            lanes = pool_lanes(problem.nobs, problem.layout.size, int(chunk_size))
            block = min(POOL_BLOCK * lanes, 1 << int(size - 1).bit_length())
            prog = pool_program(problem, steps, float(tol), axes, z_axis, lanes)
            out = _run_pool(prog, inputs.leaves, axes, size, block, z0, progress)
        else:
            prog = many_program(problem, meth, steps, float(tol), axes, z_axis)
            out = _run_chunks(
                prog, inputs.leaves, axes, np.arange(size), min(int(chunk_size), size), z0, scale, progress
            )
        se_flat, se_z, pd_ok = _batched_se(out[0].hess, out[2])
        # the fits it gives up are refitted; one it brought to convergence at an estimate running
        # to infinity or a boundary is flagged below, as after a refit
        redo = ~succeeded(out[0].status) & (out[0].status != Status.DIVERGING)
        if meth == "newton" and redo.any():
            idx = np.flatnonzero(redo)
            bucket = min(int(chunk_size), 1 << int(idx.size - 1).bit_length())  # few shapes, few compiles
            prog = many_program(problem, meth, steps, float(tol), axes, z_axis)
            again = _run_chunks(prog, inputs.leaves, axes, idx, bucket, z0, scale, False)
            out = jax.tree_util.tree_map(lambda a, b: _put(a, idx, b), out, again)
            se_again = _batched_se(again[0].hess, again[2])
            se_flat, se_z, pd_ok = (_put(a, idx, b) for a, b in zip((se_flat, se_z, pd_ok), se_again))
        if progress:
            print(file=sys.stderr)
    opt, theta, jac, det, jac_det = out
    status = np.asarray(opt.status)
    # a fit that never started (its log-likelihood or gradient not finite at the start, e.g.
    # NaN in its data) has no estimate: NaN, not the start values
    unfit = status == Status.NONFINITE_START
    theta = np.where(unfit[:, None], np.nan, np.asarray(theta))
    loglik = np.where(unfit, np.nan, -np.asarray(opt.value))
    converged = np.asarray(succeeded(status), bool)
    # the cheap first stage of fit_mle's diagnosis: an estimate whose standard error is huge
    # relative to it is running to infinity or a boundary (a decrement that vanishes
    # exponentially can pass the convergence test there): not reported as converged
    flagged = converged & _suspect(opt.z, se_z, pd_ok)
    converged = converged & ~flagged
    status = np.where(flagged, int(Status.DIVERGING), status)
    se_flat = _running_off_nan(problem.layout, se_flat, opt.z, se_z, status)
    se_flat = np.where(unfit[:, None], np.nan, se_flat)
    n_unfit = int(unfit.sum())
    if n_unfit:
        warnings.warn(
            f"{n_unfit} of {size} fits could not start: the log-likelihood or its gradient is not "
            f"finite at the start (first: fit {int(np.flatnonzero(unfit)[0])}; res[i] says why, e.g. "
            "NaN in that dataset); their estimates and standard errors are NaN",
            ConvergenceWarning,
            stacklevel=3,
        )
    n_bad = int((~converged & ~unfit).sum())
    n_flag = int((status == Status.DIVERGING).sum())
    if n_bad:
        warnings.warn(
            f"{n_bad} of {size} fits did not converge: see .status (Status(code).message) and res[i]"
            + (f"; {n_flag} of them with an estimate running to infinity or a boundary" if n_flag else ""),
            ConvergenceWarning,
            stacklevel=3,
        )
    n_sing = int((~pd_ok & (status != Status.DIVERGING) & ~unfit).sum())  # those are reported above
    if n_sing:
        warnings.warn(
            f"{n_sing} of {size} fits have an observed information that is not positive definite "
            "(their standard errors are NaN)"
            + (" besides those at infinity or a boundary" if n_flag else ""),
            HessianWarning,
            stacklevel=3,
        )
    layout = problem.layout

    def fit_one(i: int) -> MLEResult:
        with jax.enable_x64(True), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # already reported in aggregate
            pr = bind_one(i)
            one = jax.tree_util.tree_map(lambda v: v[i], opt)
            issues = find_issues(pr, one)
            fields = assemble(pr, meth, one, theta[i], jac[i], det[i], jac_det[i], issues=issues)
            return MLEResult(**fields)

    return BatchResult(
        params=frozen_dict(layout.split(theta, batch=1)),
        se=frozen_dict(layout.split(se_flat, batch=1)),
        loglik=frozen_array(loglik),
        converged=frozen_array(converged),
        status=frozen_array(status.astype(int)),
        param_names=list(layout.param_names),
        estimate=frozen_array(theta),
        bse=frozen_array(se_flat),
        _fit_one=fit_one,
    )
