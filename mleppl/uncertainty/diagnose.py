"""After-the-fit diagnosis: estimates at infinity, boundaries, unbounded likelihoods, ridges.

Runs only when the fit itself shows a sign of trouble (not converged, a Hessian that is
not positive definite, or an unconstrained standard error above ``SE_RATIO`` times the
estimate's size), so the ordinary path pays nothing.

The test is a *ray test*: the negative log-likelihood ``f`` is evaluated far out along a
few suspicious directions ``u`` of the unconstrained space, at ``z ± t·c·u`` for
``t = 1/256, 1/128, …, 64`` with ``c = max(1, ‖z‖∞)``, in one vmapped call. At a genuine
optimum ``f`` rises steeply along every such ray. Otherwise, along a direction ``u``:

- ``f`` keeps falling (within rounding) on one side → the supremum of the likelihood
  lies at infinity in ``z``: for parameters with unbounded support the estimates run
  off (separation); for bounded ones the estimate sits on the boundary of its support
  (a variance at 0, a probability at 0 or 1);
- ``f`` falls by more than ``UNBOUNDED_NATS`` → the likelihood is unbounded (e.g. a
  mixture component collapsing on one observation);
- ``f`` is flat on both sides → a ridge: the combination ``u`` of parameters is not
  identified by the data.
"""

from __future__ import annotations

import numpy as np

from ..core.records import Issue

__all__ = [
    "suspicious",
    "large_se",
    "inert_coordinates",
    "plateau_issue",
    "INERT_NATS",
    "ray_directions",
    "ray_points",
    "classify_rays",
    "RAY_STEPS",
]

SE_RATIO = 1e3
UNBOUNDED_NATS = 1.0
RAY_STEPS = 2.0 ** np.arange(-8, 7)  # 1/256 … 64


def suspicious(converged: bool, positive_definite: bool, z: np.ndarray, cov_z: np.ndarray) -> bool:
    """Whether the fit shows a sign that warrants the ray test."""
    if not converged or not positive_definite:
        return True
    se = np.sqrt(np.abs(np.diag(cov_z)))
    return bool(large_se(np.asarray(z)[None], se[None])[0])


def large_se(z: np.ndarray, se_z: np.ndarray) -> np.ndarray:
    """Per fit (rows), an unconstrained standard error that is not finite or above
    ``SE_RATIO`` times its estimate's size: the estimate may run to infinity or a boundary
    (shared by ``fit_mle`` and ``fit_many``)."""
    z, se_z = np.asarray(z), np.asarray(se_z)
    return np.any(~np.isfinite(se_z) | (se_z > SE_RATIO * np.maximum(1.0, np.abs(z))), axis=1)


# A coordinate whose gradient and curvature, over a step of its own size, move the
# log-likelihood by less than this is inert: the likelihood does not depend on it there.
INERT_NATS = 1e-8


def inert_coordinates(z: np.ndarray, g: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Coordinates on which the log-likelihood does not depend near ``z``: over a step of
    size ``max(1, |z_j|)`` the first- and second-order change (its gradient and its whole
    row of the Hessian) is below ``INERT_NATS``. A Gaussian peak moved off the data
    (Eckerle4 from b₃ = 600: its height, width and centre all give exactly zero derivatives)
    stops the optimizer on such a plateau; collinear or duplicated parameters are not inert
    (each moves the likelihood, only a combination does not)."""
    z, g, h = (np.asarray(a, dtype=np.float64) for a in (z, g, h))
    if not (np.all(np.isfinite(g)) and np.all(np.isfinite(h))):
        return np.zeros(z.shape[0], dtype=bool)
    c = np.maximum(1.0, np.abs(z))
    first = np.abs(g) * c
    second = np.max(np.abs(h) * c[:, None] * c[None, :], axis=1)
    return (first <= INERT_NATS) & (second <= INERT_NATS)


def plateau_issue(inert: np.ndarray, z_labels: list[str], z_sites: list[str]) -> Issue:
    """The issue for a fit that stopped where the likelihood ignores the ``inert`` coordinates."""
    idx = np.flatnonzero(inert)
    labels = [z_labels[i] for i in idx]
    sites = tuple(dict.fromkeys(z_sites[i] for i in idx))
    shown = ", ".join(labels[:6]) + (f" and {len(labels) - 6} more" if len(labels) > 6 else "")
    detail = (
        f"the optimizer stopped where the log-likelihood does not depend on {shown} (changing "
        f"each by its own size moves it by less than {INERT_NATS:g}), so this point is not shown "
        "to be an optimum: either the fit stalled on a plateau (e.g. a curve moved away from the "
        "data: start nearer the data with init= or try n_starts=) or no observation uses "
        "these parameters (e.g. a group with no rows: drop it from the model)"
    )
    return Issue("plateau", sites, shown, detail, tuple(int(i) for i in idx))


def ray_directions(z, g, h, eigvecs, eigvals, dsc, cov_z) -> np.ndarray:
    """Unit directions to probe (rows): the radial direction z itself (scaling a linear
    predictor keeps a separating hyperplane), the weakest eigen-directions, the Newton
    direction, and each coordinate whose standard error is suspiciously large."""
    p = z.shape[0]
    dirs = [np.asarray(z, dtype=float)]
    order = np.argsort(eigvals)
    for k in order[: min(2, p)]:
        dirs.append(dsc * eigvecs[:, k])
    try:
        d = -np.linalg.lstsq(h, g, rcond=None)[0]
        if np.all(np.isfinite(d)) and np.any(d != 0):
            dirs.append(d)
    except np.linalg.LinAlgError:
        pass
    se = np.sqrt(np.abs(np.diag(cov_z)))
    for i in np.flatnonzero(~np.isfinite(se) | (se > SE_RATIO * np.maximum(1.0, np.abs(z)))):
        e = np.zeros(p)
        e[i] = 1.0
        dirs.append(e)
    out = []
    for d in dirs:
        n = np.max(np.abs(d))
        if np.isfinite(n) and n > 0:
            out.append(d / n)
    return np.array(out) if out else np.zeros((0, p))


def ray_points(z: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """All probe points, shape (n_dirs · 2 · len(RAY_STEPS), p)."""
    c = max(1.0, float(np.max(np.abs(z), initial=0.0)))
    pts = [z + sign * t * c * u for u in dirs for sign in (1.0, -1.0) for t in RAY_STEPS]
    return np.array(pts) if pts else np.zeros((0, z.shape[0]))


def _combination(u: np.ndarray, labels: list[str]) -> str:
    idx = np.argsort(-np.abs(u))
    terms = [f"{u[i]:+.2f}·{labels[i]}" for i in idx if abs(u[i]) >= 0.05][:6]
    return " ".join(terms) if terms else "(none)"


def classify_rays(
    f0: float,
    values: np.ndarray,
    dirs: np.ndarray,
    z_labels: list[str],
    z_sites: list[str],
    bounded_sites: set[str],
) -> list[Issue]:
    """Turn the objective along the rays into issues (one per kind and set of sites)."""
    n_t = len(RAY_STEPS)
    eps = 1e-9 * (1.0 + abs(f0))
    issues: dict[tuple, Issue] = {}
    for j, u in enumerate(dirs):
        block = values[j * 2 * n_t : (j + 1) * 2 * n_t].reshape(2, n_t)
        delta = np.where(np.isnan(block), np.inf, block - f0)
        # Far out, the model itself may overflow (exp(−1000) = 0 in a scale): judge each
        # side on its prefix before the first +inf/NaN, which must hold ≥ 3 points.
        falls, flat_sides = [], []
        for side in delta:
            stop = int(np.argmax(side == np.inf)) if np.any(side == np.inf) else n_t
            head = side[:stop]
            falls.append(stop >= 3 and bool(np.all(head <= eps)))
            flat_sides.append(stop >= 3 and bool(np.all(np.abs(head) <= eps)))
        flat = all(flat_sides)
        involved = [i for i in range(len(u)) if abs(u[i]) >= 0.05]
        sites = tuple(dict.fromkeys(z_sites[i] for i in involved))
        combo = _combination(u, z_labels)
        if flat:
            kind, detail = "ridge", "the log-likelihood is flat along this combination in both directions"
        elif any(falls):
            s = 0 if falls[0] else 1
            side = delta[s]
            stop = int(np.argmax(side == np.inf)) if np.any(side == np.inf) else n_t
            gains = -side[:stop]
            gain = float(np.max(gains))
            # unbounded: still gaining substantially at the last doubling of the distance;
            # separation/boundary: the gain saturates (the supremum is finite)
            growing = gain == np.inf or (len(gains) >= 2 and gains[-1] - gains[-2] >= 0.25 * gains[-1])
            if gain > UNBOUNDED_NATS and growing:
                kind = "unbounded"
                detail = (
                    f"the log-likelihood keeps increasing (by {gain:.3g} nats further out): it is "
                    "unbounded, so there is no maximum-likelihood estimate"
                )
            elif any(site in bounded_sites for site in sites):
                kind = "boundary"
                detail = (
                    "the maximum lies on the boundary of the support (the estimate runs to it); "
                    "Wald standard errors are not valid there"
                )
            else:
                kind = "separation"
                detail = (
                    "the estimates run off to infinity while the log-likelihood approaches its "
                    "supremum (separation); no finite estimate or standard error exists"
                )
            u = u if s == 0 else -u
            combo = _combination(u, z_labels)
        else:
            continue
        key = (kind, sites)
        if key not in issues:
            issues[key] = Issue(kind, sites, combo, detail, tuple(involved))
    return list(issues.values())
