r"""Linear algebra of a batch of small symmetric matrices, written as plain arithmetic.

The inner Hessian of random effects in a plate over groups is block-diagonal: ``G`` blocks
of ``q × q`` with ``q`` the effects per group (1 for a random intercept, 2 for an intercept
and a slope). JAX's ``jnp.linalg.solve`` and ``slogdet`` lower such a batch to LAPACK's LU
with pivoting, whose XLA program (pivot loops, permutations) costs about 0.2 s of
compilation for each use on this CPU, and a Laplace fit uses it about ten times (solve, its
derivative, the log-determinant and its derivatives). For ``q ≤ SMALL`` the factorization
is instead unrolled: an :math:`LDL^\top` decomposition without pivoting, a few dozen
elementwise operations over the batch that compile in milliseconds, differentiate as
arithmetic and run as fast as LAPACK for such sizes. Larger blocks go to LAPACK.

Without pivoting the factorization exists when every leading minor is non-zero: always for
the positive-definite blocks at an inner mode; an indefinite block on the way to it gives
a direction all the same, and a zero pivot gives non-finite values, which the callers
treat as a failed step.

Notes
-----
For a symmetric :math:`H = L D L^\top` (unit lower-triangular :math:`L`, diagonal
:math:`D`): :math:`d_j = h_{jj} - \sum_{k<j} l_{jk}^2 d_k`,
:math:`l_{ij} = (h_{ij} - \sum_{k<j} l_{ik} l_{jk} d_k) / d_j`; then
:math:`\log\det H = \sum_j \log d_j` (defined when every :math:`d_j > 0`, i.e. :math:`H`
positive definite) and :math:`H^{-1} g` by forward substitution, division by
:math:`D` and back substitution.

Examples
--------
>>> import jax, jax.numpy as jnp
>>> jax.config.update("jax_enable_x64", True)
>>> from mleppl.core.blocks import block_solve, block_logdet
>>> h = jnp.array([[[4.0, 1.0], [1.0, 3.0]]])
>>> [round(float(v), 6) for v in block_solve(h, jnp.array([[1.0, 2.0]]))[0]]
[0.090909, 0.636364]
>>> round(float(block_logdet(h)[0]), 6)  # log 11
2.397895
"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["SMALL", "block_solve", "block_logdet", "block_inv_diag"]

# Blocks up to this size are factored by unrolled arithmetic (q³/6 operations each).
SMALL = 4


def _ldl(h):
    """Unit lower factor (as nested lists of arrays over the batch) and pivots of ``h``."""
    q = h.shape[-1]
    low = [[None] * q for _ in range(q)]
    d = [None] * q
    for j in range(q):
        d[j] = h[..., j, j] - sum((low[j][k] ** 2 * d[k] for k in range(j)), 0.0)
        for i in range(j + 1, q):
            low[i][j] = (h[..., i, j] - sum((low[i][k] * low[j][k] * d[k] for k in range(j)), 0.0)) / d[j]
    return low, d


def block_solve(h, g):
    """``h⁻¹ g`` for a batch: ``h`` (..., q, q) symmetric, ``g`` (..., q)."""
    q = h.shape[-1]
    if q == 1:
        return g / h[..., 0]
    if q > SMALL:
        return jnp.linalg.solve(h, g[..., None])[..., 0]
    low, d = _ldl(h)
    y = [None] * q
    for i in range(q):
        y[i] = g[..., i] - sum((low[i][k] * y[k] for k in range(i)), 0.0)
    x = [None] * q
    for i in reversed(range(q)):
        x[i] = y[i] / d[i] - sum((low[k][i] * x[k] for k in range(i + 1, q)), 0.0)
    return jnp.stack(x, axis=-1)


def block_logdet(h):
    """``log det h`` per matrix of the batch (..., q, q); NaN where ``h`` is not positive definite."""
    q = h.shape[-1]
    if q > SMALL:
        sign, ld = jnp.linalg.slogdet(h)
        return jnp.where(sign > 0, ld, jnp.nan)
    d = [h[..., 0, 0]] if q == 1 else _ldl(h)[1]
    pd = jnp.all(jnp.stack([dj > 0 for dj in d]), axis=0)
    ld = sum(jnp.log(jnp.where(dj > 0, dj, 1.0)) for dj in d)
    return jnp.where(pd, ld, jnp.nan)


def block_inv_diag(h):
    """The diagonal of ``h⁻¹`` per matrix of the batch, (..., q)."""
    q = h.shape[-1]
    if q > SMALL:
        return jnp.diagonal(jnp.linalg.inv(h), axis1=-2, axis2=-1)
    eye = jnp.eye(q, dtype=h.dtype)
    cols = [block_solve(h, jnp.broadcast_to(eye[j], h.shape[:-1]))[..., j] for j in range(q)]
    return jnp.stack(cols, axis=-1)
