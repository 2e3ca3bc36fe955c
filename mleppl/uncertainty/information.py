"""Covariance of the estimator from the observed information, and the delta method.

Everything here is small dense linear algebra on p × p matrices, done in
NumPy after the (jitted) fit: no compilation, and warnings stay in the shell.
"""

from __future__ import annotations

import numpy as np

from ..core.records import InverseInformation, mask_cov
from ..solvers.linalg import EIG_RTOL

__all__ = ["invert_information", "restrict", "delta_cov", "NULL_WEIGHT_TOL"]

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
    ``NULL_WEIGHT_TOL`` on a bad eigenvector get NaN variance.
    """
    h = np.asarray(h, dtype=np.float64)
    p = h.shape[0]
    if p == 0:
        e = np.zeros((0,))
        return InverseInformation(
            np.zeros((0, 0)), e, np.zeros((0, 0)), True, e.astype(bool), np.zeros((0, 0)), e
        )
    if not np.all(np.isfinite(h)):
        nan = np.full((p, p), np.nan)
        return InverseInformation(
            nan, np.full(p, np.nan), nan, False, np.zeros(p, bool), np.eye(p), np.ones(p)
        )
    h = 0.5 * (h + h.T)
    # Jacobi scaling (see solvers.linalg.jacobi_scale): judge and invert D H D, then
    # Σ = D (D H D)⁻¹ D. Raw Longley: cond(H) = 2e19, cond(D H D) = 2e9.
    dh = np.sqrt(np.abs(np.diag(h)))
    dsc = np.where((dh > 0) & np.isfinite(dh), 1.0 / np.where(dh > 0, dh, 1.0), 1.0)
    hs = h * dsc[:, None] * dsc[None, :]
    lam, v = np.linalg.eigh(hs)
    lam_max = np.max(np.abs(lam))
    good = lam > EIG_RTOL * lam_max if lam_max > 0 else np.zeros(p, bool)
    pd = bool(np.all(good))
    vg = v[:, good]
    cov = dsc[:, None] * ((vg / lam[good]) @ vg.T) * dsc[None, :]
    bad = v[:, ~good]
    estimable = np.sqrt(np.sum(bad**2, axis=1)) <= NULL_WEIGHT_TOL if bad.size else np.ones(p, bool)
    return InverseInformation(mask_cov(cov, ~estimable), lam, v, pd, estimable, bad, dsc)


def delta_cov(jac: np.ndarray, inv: InverseInformation) -> np.ndarray:
    r"""Delta method: :math:`\operatorname{Cov}(g(\hat z)) \approx J \Sigma_z J^\top`.

    A row of ``J`` that touches a non-estimable coordinate gives NaN in that
    output's row and column (NaN·0 would otherwise poison every output).
    """
    jac = np.asarray(jac, dtype=np.float64)
    if jac.size == 0:
        return np.zeros((jac.shape[0], jac.shape[0]))
    sigma = np.where(np.isfinite(inv.cov), inv.cov, 0.0)
    cov = jac @ sigma @ jac.T
    touched = np.any((jac != 0) & ~inv.estimable[None, :], axis=1) | ~np.all(np.isfinite(jac), axis=1)
    return mask_cov(0.5 * (cov + cov.T), touched)


def restrict(inv: InverseInformation, invalid: np.ndarray) -> InverseInformation:
    """``inv`` with the coordinates marked ``invalid`` (by the diagnosis) not estimable."""
    invalid = np.asarray(invalid, dtype=bool)
    if not invalid.any():
        return inv
    return inv._replace(cov=mask_cov(inv.cov, invalid), estimable=inv.estimable & ~invalid)
