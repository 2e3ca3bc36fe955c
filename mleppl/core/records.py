"""Immutable records handed between layers: frozen containers, the estimate, its covariance."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "FrozenDict",
    "frozen_array",
    "frozen_dict",
    "mask_cov",
    "InverseInformation",
    "FitRecord",
    "Issue",
]


def frozen_array(x) -> np.ndarray:
    """A read-only NumPy copy."""
    a = np.array(x, copy=True)
    a.flags.writeable = False
    return a


class FrozenDict(Mapping):
    """A read-only mapping that pickles (``MappingProxyType`` does not)."""

    __slots__ = ("_d",)

    def __init__(self, d: Mapping | None = None):
        object.__setattr__(self, "_d", dict(d or {}))

    def __getitem__(self, key):
        return self._d[key]

    def __iter__(self) -> Iterator:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __repr__(self) -> str:
        return repr(self._d)

    def __setattr__(self, name, value):
        raise AttributeError("FrozenDict is read-only")

    def __reduce__(self):
        return (FrozenDict, (self._d,))


def frozen_dict(d: Mapping[str, Any]) -> FrozenDict:
    return FrozenDict({k: frozen_array(v) for k, v in d.items()})


def mask_cov(cov: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """A copy of ``cov`` with NaN in every row and column where ``bad`` is True."""
    out = np.array(cov, dtype=np.float64, copy=True)
    bad = np.asarray(bad, dtype=bool)
    if bad.any():
        out[bad, :] = np.nan
        out[:, bad] = np.nan
    return out


class InverseInformation(NamedTuple):
    """A covariance of the estimate on the unconstrained scale, with its eigen-check.

    ``cov`` is H⁻¹ (or a sandwich built on it) when H is positive definite.
    Otherwise it is the inverse on the well-determined eigenspace and NaN in
    every row and column of a coordinate that loads on a null or negative
    direction (``estimable`` False).
    """

    cov: np.ndarray
    eigvals: np.ndarray
    eigvecs: np.ndarray
    positive_definite: bool
    estimable: np.ndarray  # bool, one per unconstrained coordinate
    bad_directions: np.ndarray  # p × k eigenvectors with eigenvalue ≤ floor
    scale: np.ndarray  # the Jacobi scaling D (eigen-quantities are of D H D)

    @classmethod
    def from_cov(cls, cov: np.ndarray) -> InverseInformation:
        """A record for a given covariance (NaN diagonal = not estimable)."""
        cov = np.asarray(cov, dtype=np.float64)
        est = np.isfinite(np.diag(cov)) if cov.size else np.zeros(0, bool)
        p = len(est)
        return cls(cov, np.zeros(0), np.zeros((0, 0)), bool(est.all()), est, np.zeros((p, 0)), np.ones(p))


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class FitRecord:
    """The data of a maximum-likelihood fit: what every layer after the fit reads.

    Plain, immutable and picklable (with the model when the model pickles).
    :class:`mleppl.MLEResult` adds the user-facing methods on top; the layers
    below it take this record, never the result object's methods.

    Attributes
    ----------
    params : Mapping[str, ndarray]
        Estimate of each free site on its constrained (natural) scale.
    se : Mapping[str, ndarray]
        Standard errors, same keys and shapes (NaN where not estimable).
    cov : ndarray
        Covariance over the flattened constrained parameters, ordered as
        ``param_names``.
    param_names : list of str
        Labels such as ``"beta[0]"``, ``"sigma"`` (or ``"beta[age]"`` with ``coords=``).
    loglik : float
        Maximized log-likelihood, every normalizing constant kept.
    nobs : int
        Number of observations: unmasked log-likelihood terms over all observed
        sites (an event of a vector-valued site counts once).
    n_params : int
        Free parameters: the dimension of the unconstrained vector (a simplex
        of K entries counts K − 1).
    converged : bool
        Whether mleppl's convergence test passed and a finite maximum exists;
        ``message`` says why not.
    issues : tuple of Issue
        What the after-fit diagnosis found: ``kind`` is ``"separation"``,
        ``"boundary"``, ``"unbounded"`` or ``"ridge"``, with the sites involved
        and the direction in parameter space.
    optima : pandas.DataFrame or None
        With ``n_starts > 1``: one row per start (log-likelihood, converged,
        distance to the best estimate in standard errors, distinct optimum id).
    deterministic, deterministic_se : Mapping[str, ndarray]
        ``numpyro.deterministic`` sites at the estimate and their delta-method
        standard errors.
    cov_type : str
        How ``cov`` was estimated (``"oim"``: inverse observed information).
    z, cov_z, hessian : ndarray
        Estimate, covariance and observed information on the unconstrained
        scale the optimizer works on.
    jacobian : ndarray
        d(flat constrained)/d(z) at the estimate.
    invalid : ndarray
        One bool per unconstrained coordinate: Wald inference ruled out by the
        diagnosis (running to infinity or to a boundary); every covariance of
        this fit carries NaN there.
    problem : Problem
        The model bound to its data (model, sites, layout, data arrays).
    random_modes, random_sd : Mapping[str, ndarray]
        For sites integrated out (``random=``): conditional modes at the estimate and
        conditional standard deviations (see ``MLEResult.random_effects``).
    svi : Mapping or None
        For a stochastic fit (``method="svi"``): ``steps`` taken of ``num_steps``,
        ``learning_rate``, ``warmup``, ``check_every``, ``tol``, ``stop`` (``"tol"`` or
        ``"budget"``), ``decrement_svi`` (the full-data Newton decrement λ at the SVI
        estimate: its distance to the exact maximum in standard errors), ``z_svi`` (that
        estimate, unconstrained), ``newton_steps`` (exact full-data steps taken after it),
        ``batches`` (``(plate, size, subsample_size)`` per subsampled plate) and
        ``history`` (rows ``step, mean minibatch loss, full-data NLL, λ`` per window).
        None for the exact methods.
    reml : tuple of str
        For a REML fit (``reml=``): the fixed-effect sites integrated out under a flat
        density; empty for a maximum-likelihood fit.
    restricted_cov : ndarray
        For a REML fit: the covariance of those sites' entries from the joint precision
        (glmmTMB's ``vcov`` of a REML fit, TMB's ``sdreport``): the block of the inverse
        Hessian of (random effects, fixed effects) given the variance parameters, plus
        J Σ_z Jᵀ with J = ∂b̂/∂z (their uncertainty carried through). ``res.se`` of the sites is its diagonal's root.
    restricted_cov_given : ndarray
        The first part alone, given the variance parameters: lme4's ``vcov``
        (σ² (XᵀV⁻¹X)⁻¹ for an LMM; equal to the above where the
        estimate does not move with the variance parameters, e.g. balanced designs).
    """

    params: Mapping[str, np.ndarray]
    se: Mapping[str, np.ndarray]
    cov: np.ndarray
    param_names: list
    loglik: float
    nobs: int
    n_params: int
    converged: bool
    message: str
    status: int
    method: str
    n_steps: int
    grad_norm: float
    decrement: float
    deterministic: Mapping[str, np.ndarray]
    deterministic_se: Mapping[str, np.ndarray]
    z: np.ndarray
    cov_z: np.ndarray
    hessian: np.ndarray
    jacobian: np.ndarray
    hessian_eigvals: np.ndarray
    invalid: np.ndarray
    problem: Any = dataclasses.field(default=None, compare=False)
    cov_type: str = "oim"
    issues: tuple = ()
    optima: Any = None
    random_modes: Mapping[str, np.ndarray] = dataclasses.field(default_factory=lambda: FrozenDict())
    random_sd: Mapping[str, np.ndarray] = dataclasses.field(default_factory=lambda: FrozenDict())
    svi: Mapping[str, Any] | None = None
    # REML (reml=): the fixed-effect sites integrated out with a flat density; their estimates
    # and standard errors are in params/se, their covariance (flat, site order) here
    reml: tuple = ()
    restricted_cov: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 0)))
    restricted_cov_given: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 0)))

    @property
    def aic(self) -> float:
        """Akaike information criterion, ``2k − 2 log L``."""
        return 2.0 * self.df_model - 2.0 * self.loglik

    @property
    def df_model(self) -> int:
        """Parameters counted by the information criteria: the optimized ones, plus the
        fixed effects of a REML fit (lme4's ``attr(logLik(fit), "df")``)."""
        return self.n_params + sum(int(np.size(self.params[n])) for n in self.reml)

    @property
    def bic(self) -> float:
        """Bayesian information criterion, ``k log n − 2 log L``."""
        return self.df_model * math.log(self.nobs) - 2.0 * self.loglik

    @property
    def aicc(self) -> float:
        """AIC with the small-sample correction ``2k(k+1)/(n−k−1)`` (inf if n ≤ k+1)."""
        k, n = self.df_model, self.nobs
        return self.aic + (2.0 * k * (k + 1) / (n - k - 1) if n - k - 1 > 0 else math.inf)

    @property
    def estimate(self) -> np.ndarray:
        """The flat constrained estimate, ordered as ``param_names``."""
        vals = [np.ravel(v) for k, v in self.params.items() if k not in self.reml]
        return np.concatenate(vals) if vals else np.zeros(0)

    @property
    def bse(self) -> np.ndarray:
        """Flat standard errors (statsmodels' name), ordered as ``param_names``."""
        return np.sqrt(np.diag(self.cov))


class Issue(NamedTuple):
    """One problem found by the after-fit diagnosis."""

    kind: str  # "separation" | "boundary" | "unbounded" | "ridge"
    sites: tuple[str, ...]
    direction: str  # the direction as a combination of parameter labels
    detail: str
    coords: tuple[int, ...] = ()  # the unconstrained coordinates the direction moves
