"""``MLEResult``: the user-facing facade over a fit record.

The data live in :class:`mleppl.core.records.FitRecord` (plain, immutable,
picklable); this class adds the methods a statistician calls on a fit. Each
method hands the record to the layer that does the work.
"""

from __future__ import annotations

import dataclasses
import pickle
import warnings
from typing import NamedTuple

import numpy as np
import pandas as pd

from .core.records import FitRecord, frozen_array, frozen_dict
from .core.sites import param_labels
from .core.warnings import ConvergenceWarning, MLEWarning
from .core.x64 import float64
from .reporting import tables
from .reporting.arviz import to_datatree as _to_datatree
from .reporting.latent import latent_probabilities as _latent_probabilities
from .reporting.predictive import predictive as _predictive
from .uncertainty.robust import robust_cov

__all__ = ["MLEResult"]


class _LegacyInputs(NamedTuple):
    leaves: tuple
    labels: tuple


class _LegacyFit(NamedTuple):
    problem: object
    inputs: _LegacyInputs


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class MLEResult(FitRecord):
    __doc__ = (
        "Maximum-likelihood estimate of a NumPyro model, with its uncertainty.\n\n    "
        "Immutable; pickles with its estimates, covariance and summary (and with its model when the\n    "
        "model itself pickles: a module-level function does, a closure or lambda does not; methods that\n    "
        "evaluate the likelihood then need ``res.with_model(model)``).\n"
        + FitRecord.__doc__.split("\n", 2)[2]
    )

    # ----------------------------------------------------------- honesty helpers
    def _flag_note(self, *, nonconvergence: bool = True) -> str | None:
        invalid = sorted({i.kind for i in self.issues if i.kind != "ridge"})
        if invalid:
            return f"the fit was flagged ({', '.join(invalid)}; see res.issues)"
        if nonconvergence and not self.converged:
            return f"the fit did not converge ({self.message})"
        return None

    def _warn_if_flagged(self, what: str, *, nonconvergence: bool = False) -> None:
        """Warn before reporting numbers from a fit whose estimates the diagnosis ruled out
        (and, with ``nonconvergence``, from any fit that did not converge)."""
        note = self._flag_note(nonconvergence=nonconvergence)
        if note is not None:
            cls = MLEWarning if note.startswith("the fit was flagged") else ConvergenceWarning
            warnings.warn(f"{what}: {note}; treat these numbers with care", cls, stacklevel=3)

    # ----------------------------------------------------------- tables
    def summary(self, level: float = 0.95, *, include_deterministic: bool = False, df=None) -> pd.DataFrame:
        r"""Estimates, standard errors, Wald z-tests and intervals as a DataFrame.

        Parameters
        ----------
        level : float
            Confidence level of the intervals, in (0, 1).
        include_deterministic : bool
            Also list the ``numpyro.deterministic`` sites (delta method).
        df : {None, "satterthwaite"}
            For a Gaussian (mixed) model: the fixed effects as t-tests with Satterthwaite's
            denominator degrees of freedom (lmerTest's default), their standard errors
            from the covariance given the variance parameters (lme4's ``vcov``); the
            columns become ``estimate, se, t, df, p_value, ci_lower, ci_upper`` (other rows
            keep their z-based entries, ``df = inf``). See the REML guide.

        Returns
        -------
        SummaryTable
            A ``pandas.DataFrame`` (subclass) indexed by ``param_names``; columns
            ``estimate, se, z, p_value, ci_lower, ci_upper``. A fit that did not
            converge or was flagged by the diagnosis carries its mark whenever the
            table is shown (``repr``, ``print``, ``to_string``, notebook HTML): a line
            ``NOT CONVERGED: <res.message>`` and/or ``FLAGGED: <kind> (<sites>), ...;
            see res.issues`` above the rows; a converged fit without issues prints as
            a plain DataFrame. ``df.attrs["converged"]``, ``df.attrs["message"]``,
            ``df.attrs["issues"]`` and ``df.attrs["note"]`` hold the same facts;
            ``to_csv`` / ``to_latex`` write the numbers only.

        Notes
        -----
        :math:`z = \hat\theta / \mathrm{se}`, :math:`p = 2\Phi(-|z|)`, interval
        :math:`\hat\theta \pm z_{(1+\text{level})/2}\,\mathrm{se}` on the
        constrained scale, as statsmodels reports them.

        Examples
        --------
        >>> import numpy as np, numpyro, numpyro.distributions as dist
        >>> from mleppl import fit_mle
        >>> def model(y=None):
        ...     mu = numpyro.sample("mu", dist.Normal(0, 10))
        ...     numpyro.sample("y", dist.Normal(mu, 1).expand([3]).to_event(1), obs=y)
        >>> fit_mle(model, y=np.array([1.0, 2.0, 3.0])).summary().loc["mu", "estimate"].round(6)
        np.float64(2.0)
        """
        df = tables.summary_table(self, level=level, include_deterministic=include_deterministic, df=df)
        df.attrs["converged"] = bool(self.converged)
        df.attrs["note"] = self._flag_note() or ""
        if not self.converged:
            warnings.warn(
                f"summary: {df.attrs['note']}; treat these numbers with care",
                ConvergenceWarning,
                stacklevel=2,
            )
        return df

    def conf_int(self, level: float = 0.95, method: str = "wald", **options) -> pd.DataFrame:
        """Confidence intervals as a DataFrame with columns ``lower``, ``upper``.

        ``method`` is ``"wald"`` (default; ``scale="unconstrained"`` builds it
        on the optimizer's scale and maps it back), ``"profile"`` or
        ``"bootstrap"``; see :func:`mleppl.reporting.tables.conf_int` for the
        options. A fit that did not converge or was flagged by the diagnosis
        warns: its intervals are not to be trusted.
        """
        self._warn_if_flagged("conf_int", nonconvergence=True)
        return tables.conf_int(self, level=level, method=method, **options)

    @float64
    def with_cov(self, kind: str = "oim", *, groups=None) -> MLEResult:
        r"""A new result whose covariance is ``"oim"``, ``"opg"``, ``"hc0"``, ``"hc1"`` or ``"cluster"``.

        Parameters
        ----------
        kind : {"oim", "opg", "hc0", "hc1", "cluster"}
            ``"oim"``: inverse observed information (the default of
            :func:`mleppl.fit_mle`). ``"opg"``: inverse outer product of the
            per-observation scores. ``"hc0"``: the Huber–White sandwich.
            ``"hc1"``: the sandwich times ``n/(n−p)``. ``"cluster"``: the sandwich
            with scores summed within clusters, times ``G/(G−1)·(n−1)/(n−p)``.
        groups : array-like, optional
            One cluster label per observation unit (required for ``"cluster"``).

        Returns
        -------
        MLEResult
            ``cov``, ``se``, ``cov_z``, ``deterministic_se``, ``summary()`` and
            Wald intervals use this covariance; ``cov_type`` is ``kind``. The
            estimate is unchanged; parameters the diagnosis ruled out keep NaN.

        Notes
        -----
        See :func:`mleppl.uncertainty.robust.robust_cov` for the formulas
        (statsmodels' ``cov_type="HC0"``, ``"HC1"`` and ``"cluster"``).

        Examples
        --------
        >>> import jax.numpy as jnp, numpy as np, numpyro, numpyro.distributions as dist
        >>> from mleppl import fit_mle
        >>> def model(x, y=None):
        ...     b = numpyro.sample("b", dist.Normal(0, 10).expand([2]).to_event(1))
        ...     with numpyro.plate("n", x.shape[0]):
        ...         numpyro.sample("y", dist.Poisson(jnp.exp(b[0] + b[1] * x)), obs=y)
        >>> x = np.linspace(-1, 1, 8); y = np.array([0, 1, 1, 0, 2, 3, 1, 4.0])
        >>> res = fit_mle(model, x, y=y).with_cov("hc0")
        >>> res.cov_type, res.se["b"].shape
        ('hc0', (2,))
        """
        if self.reml and kind != "oim":
            raise ValueError(
                f"with_cov: expected kind='oim' for a REML fit, got {kind!r}: the restricted "
                "likelihood is not a sum over observations, so its sandwich is not defined "
                "(glmmTMB refuses it too); refit by ML (without reml=) for robust standard errors"
            )
        rc = robust_cov(self, kind, groups=groups)  # validates kind and groups
        self._warn_if_flagged("with_cov")
        return dataclasses.replace(
            self,
            cov=frozen_array(rc.cov),
            se=frozen_dict({**rc.se, **{n: self.se[n] for n in self.reml}}),
            cov_z=frozen_array(rc.inv.cov),
            deterministic_se=frozen_dict(rc.deterministic_se),
            cov_type=kind,
        )

    # ----------------------------------------------------------- ArviZ and prediction
    def to_datatree(self, *, num_samples: int = 1000, rng_key=None, uncertainty: bool = True, **options):
        """The fit as an ArviZ 1.x DataTree; see :func:`mleppl.reporting.arviz.to_datatree`."""
        self._warn_if_flagged("to_datatree")
        return _to_datatree(
            self, num_samples=num_samples, rng_key=rng_key, uncertainty=uncertainty, **options
        )

    def predictive(
        self,
        rng_key,
        *args,
        num_samples: int = 1000,
        uncertainty: bool = False,
        level: str = "population",
        **model_kwargs,
    ):
        """Predictive draws, site -> ``(S, ...)``; see :func:`mleppl.reporting.predictive.predictive`.

        ``level="group"`` holds random effects at their conditional modes (fitted groups);
        the default ``"population"`` draws them (a new group).
        """
        self._warn_if_flagged("predictive")
        return _predictive(
            self,
            rng_key,
            *args,
            num_samples=num_samples,
            uncertainty=uncertainty,
            level=level,
            **model_kwargs,
        )

    @property
    def data_as_constants(self) -> bool:
        """True when the model was compiled with its data held as constants.

        That happens when the model cannot be traced with its data as JAX's traced
        inputs: it applies NumPy to a data argument (``np.log(exposure)``,
        ``obs_mask=~np.isnan(y)``), branches on data values, or uses a pandas
        argument as such (``df["age"]``, ``X.values``). The fit is the same; the cost
        is that each new dataset compiles its own programs (the fast path compiles once
        per model and data shapes) and :func:`mleppl.fit_many` cannot batch the model.
        ``res.problem.spec.constants`` says what stopped the fast path.
        """
        return self.problem is not None and self.problem.constants

    @property
    def fit(self) -> _LegacyFit:
        """Deprecated: ``res.problem`` holds the model bound to its data.

        Kept so that ``res.fit.inputs.leaves`` (the data arrays) keeps working.
        """
        warnings.warn("res.fit is deprecated; use res.problem", DeprecationWarning, stacklevel=2)
        pr = self.problem
        return _LegacyFit(pr, _LegacyInputs(pr.data, pr.labels))

    @property
    def random_effects(self) -> dict:
        """Conditional modes of the sites integrated out (``random=``) and their conditional SDs.

        A dict site → DataFrame with columns ``mode`` and ``sd``, one row per element
        (lme4's ``ranef(condVar=TRUE)``, TMB's ``sdreport`` random part): the mode of
        :math:`p(u \\mid y, \\hat\theta)` and :math:`\\sqrt{\\operatorname{diag} H^{-1}}` with
        :math:`H = -\nabla_u^2 \\log p(y, u \\mid \\hat\theta)` there. Empty without ``random=``.
        """
        out = {}
        for name, mode in self.random_modes.items():
            labels = param_labels(name, np.shape(mode))
            out[name] = pd.DataFrame(
                {"mode": np.ravel(mode), "sd": np.ravel(self.random_sd[name])},
                index=pd.Index(labels, name="effect"),
            )
        return out

    def latent_probabilities(self, sites=None) -> dict:
        """Posterior probabilities of the discrete latent sites given the estimate (site →
        ``(*batch, K)``); see :func:`mleppl.reporting.latent.latent_probabilities`."""
        return _latent_probabilities(self, sites)

    # ----------------------------------------------------------- saving
    def with_model(self, model) -> MLEResult:
        """This result with its model restored (after unpickling a result whose model did not pickle)."""
        if not callable(model):
            raise TypeError(f"model: expected a callable NumPyro model, got {type(model).__name__}")
        return dataclasses.replace(self, problem=self.problem._replace(model=model))

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        pr = state.get("problem")
        if pr is not None:
            try:
                pickle.dumps(pr)
            except Exception:  # noqa: BLE001 - closures, lambdas, local classes: keep everything else
                state["problem"] = pr._replace(model=None)
        return state

    def __setstate__(self, state: dict) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, v)

    # ----------------------------------------------------------- display
    def __repr__(self) -> str:
        status = "converged" if self.converged else "NOT converged"
        kind = f"REML ({', '.join(self.reml)}) " if self.reml else ""
        return (
            f"<MLEResult {kind}{status}: loglik={self.loglik:.6g}, n_params={self.n_params}, "
            f"nobs={self.nobs}, method={self.method!r}, cov_type={self.cov_type!r}>"
        )

    def __str__(self) -> str:
        head = (
            f"{'REML fit (restricted log-likelihood)' if self.reml else 'Maximum-likelihood fit'} "
            f"({'converged' if self.converged else 'NOT converged: ' + self.message})\n"
            f"  log-likelihood {self.loglik:.6f}   nobs {self.nobs}   parameters {self.n_params}\n"
            f"  AIC {self.aic:.4f}   BIC {self.bic:.4f}   covariance {self.cov_type}\n"
        )
        with warnings.catch_warnings():  # the head already says NOT converged
            warnings.simplefilter("ignore", ConvergenceWarning)
            table = self.summary()
        flags = [line + "\n" for line in table.status if not line.startswith("NOT CONVERGED")]
        with pd.option_context("display.width", 120, "display.max_rows", 200):  # the head says NOT converged
            body = pd.DataFrame.to_string(table, float_format=lambda v: f"{v:.6g}")
        return head + "".join(flags) + body
