"""Covariance of the estimator from the observed information, and the delta method.

Everything here is small dense linear algebra on p × p matrices, done in
NumPy after the (jitted) fit: no compilation, and warnings stay in the shell.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..core.records import InverseInformation, mask_cov
from ..solvers.linalg import EIG_RTOL

__all__ = [
    "invert_information",
    "invert_information_many",
    "BatchInverse",
    "delta_se_many",
    "restrict",
    "delta_cov",
    "NULL_WEIGHT_TOL",
]

# A coordinate whose weight on the null space of H exceeds this is not estimable.
NULL_WEIGHT_TOL = 1e-6


def invert_information(h: np.ndarray) -> InverseInformation:
    r"""Invert the observed information ``H = ∇²(−log L)`` at the optimum.

    Notes
    -----
    With :math:`D = \operatorname{diag}(H)^{-1/2}` and the eigen-decomposition
    :math:`D H D = V \Lambda V^\top`, eigenvalues at most
    ``EIG_RTOL · max|λ|`` (or negative) mark directions in which the likelihood
    is flat or curves the wrong way. :math:`\Sigma = D V_g \Lambda_g^{-1} V_g^\top D`
    over the good eigenvectors; coordinates with weight above
    ``NULL_WEIGHT_TOL`` on a bad eigenvector get NaN variance. The same arithmetic as
    :func:`invert_information_many` on a batch of one (``fit_many`` and ``fit_mle`` share it).
    """
    h = np.asarray(h, dtype=np.float64)
    b = invert_information_many(h[None])
    good = b.good[0]
    return InverseInformation(
        b.cov[0],
        b.eigvals[0],
        b.eigvecs[0],
        bool(b.positive_definite[0]),
        b.estimable[0],
        b.eigvecs[0][:, ~good] if np.all(np.isfinite(h)) else np.eye(h.shape[0]),
        b.scale[0],
    )


class BatchInverse(NamedTuple):
    """:func:`invert_information` of a stack of Hessians: each field with a leading batch axis
    (``good``: the eigenvalues kept, per fit)."""

    cov: np.ndarray
    eigvals: np.ndarray
    eigvecs: np.ndarray
    positive_definite: np.ndarray
    estimable: np.ndarray
    good: np.ndarray
    scale: np.ndarray


def _eigh(hs: np.ndarray):
    """``np.linalg.eigh`` of a stack, read off directly when every matrix is diagonal (separate
    intercepts per group: 2,100 of them cost two 1-s eigen-decompositions per fit)."""
    p = hs.shape[-1]
    diag = np.diagonal(hs, axis1=1, axis2=2)
    if p > 1 and not np.any(hs.reshape(hs.shape[0], -1)[:, :-1].reshape(hs.shape[0], p - 1, p + 1)[:, :, 1:]):
        order = np.argsort(diag, axis=1, kind="stable")
        lam = np.take_along_axis(diag, order, axis=1)
        v = np.zeros_like(hs)
        rows = np.arange(p)
        for b in range(hs.shape[0]):
            v[b, order[b], rows] = 1.0
        return lam, v
    return np.linalg.eigh(hs)


def invert_information_many(h: np.ndarray) -> BatchInverse:
    """:func:`invert_information` of each Hessian in ``h`` (shape (B, p, p)), vectorized:
    stacked ``eigh``, no Python loop over fits. A Hessian with a non-finite entry gets NaN
    eigenvalues and covariance and nothing estimable."""
    h = np.asarray(h, dtype=np.float64)
    n, p = h.shape[0], h.shape[-1]
    if p == 0:
        e = np.zeros((n, 0))
        z = np.zeros((n, 0, 0))
        return BatchInverse(z, e, z, np.ones(n, bool), e.astype(bool), e.astype(bool), e)
    finite = np.all(np.isfinite(h), axis=(1, 2))
    h = np.where(finite[:, None, None], 0.5 * (h + np.swapaxes(h, 1, 2)), 0.0)
    # Jacobi scaling (see solvers.linalg.jacobi_scale): judge and invert D H D, then
    # Σ = D (D H D)⁻¹ D. Raw Longley: cond(H) = 2e19, cond(D H D) = 2e9.
    dh = np.sqrt(np.abs(np.diagonal(h, axis1=1, axis2=2)))
    dsc = np.where((dh > 0) & np.isfinite(dh), 1.0 / np.where(dh > 0, dh, 1.0), 1.0)
    hs = h * dsc[:, :, None] * dsc[:, None, :]
    lam, v = _eigh(hs)
    lam_max = np.max(np.abs(lam), axis=1, keepdims=True)
    good = (lam > EIG_RTOL * lam_max) & (lam_max > 0) & finite[:, None]
    pd = np.all(good, axis=1)
    inv_lam = np.where(good, 1.0 / np.where(good, lam, 1.0), 0.0)
    # matmul, not einsum: NumPy's einsum of three operands loops in C without BLAS (5 s at p = 2100)
    cov = dsc[:, :, None] * ((v * inv_lam[:, None, :]) @ np.swapaxes(v, 1, 2)) * dsc[:, None, :]
    null_weight = np.sqrt((v**2 @ (~good).astype(np.float64)[:, :, None])[:, :, 0])
    estimable = (null_weight <= NULL_WEIGHT_TOL) & finite[:, None]
    cov = np.where(estimable[:, :, None] & estimable[:, None, :], cov, np.nan)
    lam = np.where(finite[:, None], lam, np.nan)
    v = np.where(finite[:, None, None], v, np.eye(p)[None])
    dsc = np.where(finite[:, None], dsc, 1.0)
    return BatchInverse(cov, lam, v, pd, estimable, good, dsc)


def delta_se_many(jac: np.ndarray, inv: BatchInverse) -> np.ndarray:
    """Per fit, the delta-method standard errors ``sqrt(diag(J Σ Jᵀ))`` of
    :func:`delta_cov` (shape (B, k)): NaN for an output whose row of ``J`` touches a
    coordinate that is not estimable, or that is not finite."""
    jac = np.asarray(jac, dtype=np.float64)
    sigma = np.where(np.isfinite(inv.cov), inv.cov, 0.0)
    var = np.sum((jac @ sigma) * jac, axis=2)
    touched = np.any((jac != 0) & ~inv.estimable[:, None, :], axis=2) | ~np.all(np.isfinite(jac), axis=2)
    return np.where(touched, np.nan, np.sqrt(np.abs(var)))


def delta_cov(jac: np.ndarray, inv: InverseInformation) -> np.ndarray:
    r"""Delta method: :math:`\operatorname{Cov}(g(\hat z)) \approx J \Sigma_z J^\top`.

    A row of ``J`` that touches a non-estimable coordinate gives NaN in that
    output's row and column (NaN·0 would otherwise poison every output).
    """
    jac = np.asarray(jac, dtype=np.float64)
    if jac.size == 0:
        return np.zeros((jac.shape[0], jac.shape[0]))
    sigma = np.where(np.isfinite(inv.cov), inv.cov, 0.0)
    k, p = jac.shape
    if k == p and not np.any(jac - np.diag(np.diagonal(jac))):  # elementwise transforms only
        d = np.diagonal(jac)
        cov = d[:, None] * sigma * d[None, :]
    else:
        cov = jac @ sigma @ jac.T
    touched = np.any((jac != 0) & ~inv.estimable[None, :], axis=1) | ~np.all(np.isfinite(jac), axis=1)
    return mask_cov(0.5 * (cov + cov.T), touched)


def restrict(inv: InverseInformation, invalid: np.ndarray) -> InverseInformation:
    """``inv`` with the coordinates marked ``invalid`` (by the diagnosis) not estimable."""
    invalid = np.asarray(invalid, dtype=bool)
    if not invalid.any():
        return inv
    return inv._replace(cov=mask_cov(inv.cov, invalid), estimable=inv.estimable & ~invalid)
