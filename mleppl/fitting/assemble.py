"""From the compiled program's output to a fit record: diagnosis, warnings, covariance, record.

Each step is its own function: ``verdict`` (status → converged, message),
``diagnose`` (the ray test, only on signs of trouble), ``report`` (warnings),
``covariances`` (inverse information restricted to what the diagnosis allows,
delta method), and ``assemble`` which strings them together.
"""

from __future__ import annotations

import warnings

import jax.numpy as jnp
import numpy as np

from ..core.records import InverseInformation, frozen_array, frozen_dict, mask_cov
from ..core.sites import Layout, split_flat
from ..core.status import Status, succeeded
from ..core.warnings import (
    BoundaryWarning,
    ConvergenceWarning,
    HessianWarning,
    IdentifiabilityWarning,
    SeparationWarning,
)
from ..uncertainty import diagnose as diag
from ..uncertainty.information import delta_cov, invert_information, restrict
from .program import batch_negloglik, conditional_program

__all__ = ["assemble", "find_issues", "inverse"]

_ISSUE_WARNINGS = {
    "separation": SeparationWarning,
    "boundary": BoundaryWarning,
    "unbounded": BoundaryWarning,
    "ridge": IdentifiabilityWarning,
    "plateau": ConvergenceWarning,
}
_STACK = 5  # warnings point at the user's call of fit_mle


def verdict(opt) -> tuple[bool, str]:
    status = Status(int(opt.status))
    message = status.message
    if not succeeded(status):
        grad_max = float(np.max(np.abs(opt.grad), initial=0.0))
        message += f" (max |gradient| {grad_max:.3g}, λ²/2 {0.5 * float(opt.decrement2):.3g})"
    return bool(succeeded(status)), message


def diagnose(problem, opt, inv: InverseInformation) -> list:
    """The ray test of :mod:`mleppl.uncertainty.diagnose` on this fit (one vmapped evaluation)."""
    z = np.asarray(opt.z, dtype=np.float64)
    h = np.asarray(opt.hess, dtype=np.float64)
    g = np.asarray(opt.grad, dtype=np.float64)
    if not np.all(np.isfinite(z)):
        return []
    if np.all(np.isfinite(h)):
        dirs = diag.ray_directions(z, g, h, inv.eigvecs, inv.eigvals, inv.scale, inv.cov)
    else:
        # the Hessian overflowed (e.g. a scale at 1e-129): probe radially and every coordinate
        radial = z / max(float(np.max(np.abs(z))), 1e-300)
        dirs = np.vstack([radial[None, :], np.eye(z.shape[0])]) if np.any(z != 0) else np.eye(z.shape[0])
    if not len(dirs):
        return []
    pts = diag.ray_points(z, dirs)
    values = np.asarray(batch_negloglik(problem)(jnp.asarray(pts), problem.data))
    layout = problem.layout
    issues = diag.classify_rays(
        float(opt.value),
        values,
        dirs,
        layout.z_labels(),
        layout.coordinate_sites,
        {s.name for s in layout.sites if s.bounded},
    )
    inert = diag.inert_coordinates(z, g, h)
    if succeeded(int(opt.status)) or not inert.any():
        return issues
    # stopped on a plateau: what the rays saw along the inert coordinates is about the
    # stopping point, not the model (a ridge or an "unbounded" gain there is not a finding)
    kept = [i for i in issues if not (i.coords and set(i.coords) <= set(np.flatnonzero(inert)))]
    return [diag.plateau_issue(inert, layout.z_labels(), layout.coordinate_sites), *kept]


def report(issues, converged: bool, message: str) -> tuple[bool, str]:
    """Warn once per diagnosed issue; separation and unbounded likelihoods are not convergence."""
    for issue in issues:
        text = f"{issue.kind}: {issue.detail}. Direction: {issue.direction}"
        if issue.kind in ("separation", "unbounded"):
            text += f"; standard errors of {list(issue.sites)} set to NaN"
        elif issue.kind == "boundary":
            text += (
                f"; standard errors of the entries of {list(issue.sites)} on the boundary set to NaN "
                "(those of the other entries are given the boundary, e.g. on the simplex's face)"
            )
        if issue.kind in ("separation", "unbounded", "plateau"):
            converged = False
        message = f"{text} [optimizer: {message}]"
        warnings.warn(text, _ISSUE_WARNINGS[issue.kind], stacklevel=_STACK)
    return converged, message


def _invalid_coords(problem, issues) -> tuple[np.ndarray, np.ndarray]:
    """z coordinates the diagnosis found running to infinity or to a boundary: every
    coordinate of a site that separates or is unbounded; for a boundary, the coordinates the
    boundary direction moves (a simplex with one empty category: its one running coordinate),
    also returned on their own (the second array)."""
    sites = problem.layout.coordinate_sites
    bad_sites = {s for i in issues if i.kind in ("separation", "unbounded") for s in i.sites}
    whole = np.array([site in bad_sites for site in sites], dtype=bool)
    edge = np.zeros(len(sites), dtype=bool)
    for i in issues:
        if i.kind == "boundary":
            if i.coords:
                edge[list(i.coords)] = True
            else:
                edge |= np.array([site in i.sites for site in sites], dtype=bool)
    return whole | edge, edge & ~whole


# An entry whose derivatives are this small relative to those of its site's other entries no
# longer moves with its coordinates: it sits where its transform saturates, on the boundary.
SATURATED = 1e-6


def _at_boundary(jac: np.ndarray, edge: np.ndarray, layout) -> np.ndarray:
    """Constrained entries that sit on the boundary found along the ``edge`` coordinates:
    those that depend on nothing but them, and those saturated (a simplex entry at 0)."""
    out = np.zeros(jac.shape[0], dtype=bool)
    if not edge.any():
        return out
    a = np.abs(np.where(np.isfinite(jac), jac, np.inf))
    for b in layout.blocks():
        if not edge[b.z].any():
            continue
        rows = a[b.theta]
        only_edge = np.sum(rows[:, ~edge], axis=1) == 0
        scale = np.max(rows, axis=1)
        saturated = scale <= SATURATED * np.max(scale, initial=0.0)
        out[b.theta] = only_edge | saturated
    return out


def _deterministic(problem, det, jac_det, inv) -> tuple[dict, dict]:
    if not det.size:
        return {}, {}
    var = np.diag(delta_cov(jac_det, inv))
    shapes = problem.sites.deterministic
    return split_flat(shapes, np.asarray(det)), split_flat(shapes, np.sqrt(var))


_LAST: list = []  # [(Hessian, InverseInformation)] of the last Hessian inverted


def inverse(h) -> InverseInformation:
    """:func:`invert_information`, remembered for the last Hessian: the diagnosis and the
    record of one fit invert the same matrix (two eigen-decompositions of 2,100² were 2 s)."""
    h = np.asarray(h, dtype=np.float64)
    last = _LAST[0] if _LAST else None  # one read: other threads may replace it
    if last is not None and last[0].shape == h.shape and np.array_equal(last[0], h, equal_nan=True):
        return last[1]
    inv = invert_information(h)
    _LAST[:] = [(h.copy(), inv)]
    return inv


def find_issues(problem, opt) -> list:
    """What the after-fit diagnosis finds (run only when the fit shows a sign of trouble)."""
    converged, _ = verdict(opt)
    inv = inverse(opt.hess)
    if int(opt.status) != Status.NONFINITE_START and diag.suspicious(
        converged, inv.positive_definite, np.asarray(opt.z), inv.cov
    ):
        return diagnose(problem, opt, inv)
    return []


def assemble(problem, method: str, opt, theta, jac, det, jac_det, optima=None, issues=(), note: str = ""):
    """The fields of the fit record (a dict) from the compiled program's output and the
    issues the (verified) diagnosis found; ``note`` (how a stochastic fit ran) is appended
    to the message."""
    converged, message = verdict(opt)
    if note:
        message = f"{message} [{note}]"
    inv = inverse(opt.hess)
    issues = list(issues)
    status = int(opt.status)
    # a spent step budget is reported as non-convergence first, whatever the diagnosis adds
    if not converged and (not issues or status == Status.MAX_STEPS):
        text = (
            f"fit {message}" if message.startswith("did not converge") else f"fit did not converge: {message}"
        )
        warnings.warn(text, ConvergenceWarning, stacklevel=_STACK - 1)
    if not inv.positive_definite:
        sites = problem.layout.coordinate_sites
        bad = list(dict.fromkeys(site for site, ok in zip(sites, inv.estimable) if not ok))
        warnings.warn(
            "the observed information (Hessian of the negative log-likelihood) is not positive "
            f"definite at the estimate (smallest eigenvalue {np.min(inv.eigvals):.3g}); "
            f"standard errors of {bad or 'some parameters'} are NaN",
            HessianWarning,
            stacklevel=_STACK - 1,
        )
    converged, message = report(issues, converged, message)
    invalid, edge = _invalid_coords(problem, issues)
    inv = restrict(inv, invalid)
    # the other entries of a site on a boundary: covariance given the boundary coordinates
    # (the face of the simplex), i.e. with those coordinates held where they are; the entries
    # on the boundary itself have no Wald standard error
    jac_face = np.where(edge[None, :], 0.0, np.asarray(jac, dtype=np.float64))
    cov = mask_cov(delta_cov(jac_face, inv), _at_boundary(np.asarray(jac), edge, problem.layout))
    det_vals, det_se = _deterministic(problem, det, jac_det, inv)
    layout = problem.layout
    rand = _random_effects(problem, opt.z, inv.cov)
    restricted = rand.pop("restricted", {})
    return dict(
        params=frozen_dict({**layout.split(np.asarray(theta)), **restricted.get("params", {})}),
        se=frozen_dict({**layout.split(np.sqrt(np.diag(cov))), **restricted.get("se", {})}),
        cov=frozen_array(cov),
        param_names=list(layout.param_names),
        loglik=float(-opt.value),
        nobs=problem.nobs,
        n_params=layout.size,
        converged=converged,
        message=message,
        status=status,
        method=method,
        n_steps=int(opt.n_newton) + int(opt.n_lbfgs),
        grad_norm=float(np.max(np.abs(opt.grad), initial=0.0)),
        decrement=float(0.5 * opt.decrement2),
        deterministic=frozen_dict(det_vals),
        deterministic_se=frozen_dict(det_se),
        z=frozen_array(opt.z),
        cov_z=frozen_array(inv.cov),
        hessian=frozen_array(opt.hess),
        jacobian=frozen_array(jac),
        hessian_eigvals=frozen_array(inv.eigvals),
        invalid=frozen_array(invalid),
        issues=tuple(issues),
        optima=optima,
        problem=problem,
        reml=tuple(restricted.get("params", {})),
        restricted_cov=frozen_array(restricted.get("cov", np.zeros((0, 0)))),
        restricted_cov_given=frozen_array(restricted.get("cov_given", np.zeros((0, 0)))),
        **rand,
    )


def _random_effects(problem, z, cov_z) -> dict:
    """Conditional modes and SDs of the integrated sites at the estimate."""
    if problem.random is None:
        return {}
    import jax

    theta, sd, cov, jac = jax.device_get(conditional_program(problem)(z, problem.data))
    layout = problem.random.layout
    modes, sds = layout.split(np.asarray(theta)), layout.split(np.asarray(sd))
    names = problem.random.restricted
    out = {
        "random_modes": frozen_dict({k: v for k, v in modes.items() if k not in names}),
        "random_sd": frozen_dict({k: v for k, v in sds.items() if k not in names}),
    }
    if names:  # REML's fixed effects: estimates and the joint precision's covariance
        given = np.asarray(cov)  # given the variance parameters: lme4's vcov
        jac = np.asarray(jac)
        # the joint precision's (TMB's sdreport): their uncertainty through the variance
        # parameters added, J Σ_z Jᵀ (0 where the estimate does not move with them, e.g. a
        # balanced LMM, where both equal lme4's vcov)
        full = given + jac @ np.asarray(cov_z) @ jac.T
        split = [s for s in layout.sites if s.name in names]
        out["restricted"] = {
            "params": {s.name: modes[s.name] for s in split},
            "se": Layout(tuple(split)).split(np.sqrt(np.diag(full))),
            "cov": full,
            "cov_given": given,
        }
    return out
