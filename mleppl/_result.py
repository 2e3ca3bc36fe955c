"""The immutable result of a maximum-likelihood fit."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = ["MLEResult", "frozen_array", "frozen_dict"]


def frozen_array(x) -> np.ndarray:
    """A read-only float64 (or as given) NumPy copy."""
    a = np.array(x, copy=True)
    a.flags.writeable = False
    return a


def frozen_dict(d: Mapping[str, Any]) -> Mapping[str, np.ndarray]:
    return MappingProxyType({k: frozen_array(v) for k, v in d.items()})


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class MLEResult:
    """Maximum-likelihood estimate of a NumPyro model, with its uncertainty.

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
        Labels such as ``"beta[0]"``, ``"sigma"``.
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
    cov_type: str = "oim"
    issues: tuple = ()  # problems found by the after-fit diagnosis (see mleppl._diagnose.Issue)
    optima: Any = None  # with n_starts > 1: a DataFrame of the optima the starts reached
    fit: Any = dataclasses.field(default=None, compare=False)  # private: how to refit/evaluate

    # ----------------------------------------------------------- criteria
    @property
    def aic(self) -> float:
        """Akaike information criterion, ``2k − 2 log L``."""
        return 2.0 * self.n_params - 2.0 * self.loglik

    @property
    def bic(self) -> float:
        """Bayesian information criterion, ``k log n − 2 log L``."""
        return self.n_params * math.log(self.nobs) - 2.0 * self.loglik

    @property
    def aicc(self) -> float:
        """AIC with the small-sample correction ``2k(k+1)/(n−k−1)`` (inf if n ≤ k+1)."""
        k, n = self.n_params, self.nobs
        return self.aic + (2.0 * k * (k + 1) / (n - k - 1) if n - k - 1 > 0 else math.inf)

    @property
    def estimate(self) -> np.ndarray:
        """The flat constrained estimate, ordered as ``param_names``."""
        return np.concatenate([np.ravel(v) for v in self.params.values()]) if self.params else np.zeros(0)

    @property
    def bse(self) -> np.ndarray:
        """Flat standard errors (statsmodels' name), ordered as ``param_names``."""
        return np.sqrt(np.diag(self.cov))

    # ----------------------------------------------------------- tables
    def summary(self, level: float = 0.95, *, include_deterministic: bool = False):
        """Estimates, standard errors, Wald z-tests and intervals as a DataFrame.

        Parameters
        ----------
        level : float
            Confidence level of the intervals, in (0, 1).
        include_deterministic : bool
            Also list the ``numpyro.deterministic`` sites (delta method).

        Returns
        -------
        pandas.DataFrame
            Indexed by ``param_names``; columns ``estimate, se, z, p_value,
            ci_lower, ci_upper``.

        Notes
        -----
        :math:`z = \\hat\\theta / \\mathrm{se}`, :math:`p = 2\\Phi(-|z|)`, interval
        :math:`\\hat\\theta \\pm z_{(1+\\text{level})/2}\\,\\mathrm{se}` on the
        constrained scale, as statsmodels reports them.
        """
        from ._inference import summary_table

        return summary_table(self, level=level, include_deterministic=include_deterministic)

    def conf_int(self, level: float = 0.95, method: str = "wald", **options):
        """Confidence intervals as a DataFrame with columns ``lower``, ``upper``.

        ``method`` is ``"wald"`` (default; ``scale="unconstrained"`` builds it
        on the optimizer's scale and maps it back), ``"profile"`` or
        ``"bootstrap"``; see :func:`mleppl._inference.conf_int` for the options.
        """
        from ._inference import conf_int

        return conf_int(self, level=level, method=method, **options)

    def with_cov(self, kind: str = "oim", *, groups=None) -> MLEResult:
        """A new result whose covariance is ``"oim"``, ``"opg"``, ``"hc0"``, ``"hc1"`` or ``"cluster"``.

        See :func:`mleppl._robust.with_cov` for the formulas.
        """
        from ._robust import with_cov

        return with_cov(self, kind, groups=groups)

    # ----------------------------------------------------------- ArviZ and prediction
    def to_datatree(self, *, num_samples: int = 1000, rng_key=None, uncertainty: bool = True, **options):
        """The fit as an ArviZ 1.x DataTree; see :func:`mleppl._arviz.to_datatree`."""
        from ._arviz import to_datatree

        return to_datatree(self, num_samples=num_samples, rng_key=rng_key, uncertainty=uncertainty, **options)

    def predictive(self, rng_key, *args, num_samples: int = 1000, uncertainty: bool = False, **model_kwargs):
        """Predictive draws, site -> ``(S, ...)``; see :func:`mleppl._predictive.predictive`."""
        from ._predictive import predictive

        return predictive(
            self, rng_key, *args, num_samples=num_samples, uncertainty=uncertainty, **model_kwargs
        )

    def __repr__(self) -> str:
        status = "converged" if self.converged else "NOT converged"
        return (
            f"<MLEResult {status}: loglik={self.loglik:.6g}, n_params={self.n_params}, "
            f"nobs={self.nobs}, method={self.method!r}, cov_type={self.cov_type!r}>"
        )

    def __str__(self) -> str:
        import pandas as pd

        head = (
            f"Maximum-likelihood fit ({'converged' if self.converged else 'NOT converged: ' + self.message})\n"
            f"  log-likelihood {self.loglik:.6f}   nobs {self.nobs}   parameters {self.n_params}\n"
            f"  AIC {self.aic:.4f}   BIC {self.bic:.4f}   covariance {self.cov_type}\n"
        )
        with pd.option_context("display.width", 120, "display.max_rows", 200):
            return head + self.summary().to_string(float_format=lambda v: f"{v:.6g}")
