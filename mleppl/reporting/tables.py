"""Tables and intervals from a fitted result (Wald; more methods build on these)."""

from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..core.sites import param_labels
from ..core.stats import check_level, normal_quantile, normal_sf, t_quantile, t_sf
from ..core.x64 import float64
from ..uncertainty.bootstrap import bootstrap_conf_int
from ..uncertainty.ddf import DF_METHODS, satterthwaite
from ..uncertainty.profile import profile_conf_int

__all__ = ["SummaryTable", "summary_table", "status_lines", "conf_int", "CONF_INT_METHODS"]


def status_lines(attrs: dict) -> list[str]:
    """The marks a summary table carries above its rows: why the fit is not to be trusted.

    ``NOT CONVERGED: <message>`` for a fit that did not converge, ``FLAGGED: <kind>
    (<sites>), ...; see res.issues`` for one with issues found by the after-fit diagnosis
    (separation, boundary, unbounded, ridge); nothing for a converged fit without issues.
    """
    lines = []
    if attrs.get("reml"):
        lines.append(
            f"REML: restricted log-likelihood, fixed effects {', '.join(attrs['reml'])} integrated out "
            "(their standard errors from the joint precision)"
        )
    if attrs.get("converged") is False:
        lines.append(f"NOT CONVERGED: {attrs.get('message') or 'no reason given'}")
    issues = attrs.get("issues") or ()
    if issues:
        lines.append(f"FLAGGED: {', '.join(issues)}; see res.issues")
    return lines


class SummaryTable(pd.DataFrame):
    """The summary of a fit: a ``pandas.DataFrame`` whose printed forms carry the fit's status.

    ``repr``, ``print``, ``to_string`` and the notebook's HTML put the lines of
    :func:`status_lines` (``NOT CONVERGED: …``, ``FLAGGED: …``) above the table, every time
    it is shown, as statsmodels prints ``converged: False``; a converged fit without issues
    prints as a plain DataFrame. The status lives in ``attrs`` (``converged``, ``message``,
    ``note``, ``issues``), which pandas carries through ``.loc``, ``round`` and other frames
    derived from the table; ``to_csv``, ``to_latex`` and ``to_numpy`` write the numbers only.
    """

    _metadata: list[str] = []  # the status is in ``attrs``: no extra attributes to carry

    @property
    def _constructor(self):
        return SummaryTable

    @property
    def status(self) -> list[str]:
        """The status lines shown above the table (empty for a converged fit without issues)."""
        return status_lines(self.attrs)

    def to_string(self, buf=None, **options):
        """``DataFrame.to_string`` (same options) with the status lines above the table."""
        encoding = options.pop("encoding", None)
        text = super().to_string(**options)
        lines = self.status
        if lines:
            text = "\n".join(lines) + "\n" + text
        if buf is None:
            return text
        if isinstance(buf, (str, os.PathLike)):
            with open(buf, "w", encoding=encoding or "utf-8") as f:
                f.write(text)
        else:
            buf.write(text)
        return None

    def _repr_html_(self):
        html = super()._repr_html_()
        lines = self.status
        if html is None or not lines:
            return html
        import html as _html

        head = "".join(f"<p><strong>{_html.escape(line)}</strong></p>" for line in lines)
        return head + html


def _wald(est: np.ndarray, se: np.ndarray, level: float):
    q = normal_quantile(0.5 + level / 2.0)
    return est - q * se, est + q * se


@float64
def summary_table(rec, *, level: float = 0.95, include_deterministic: bool = False, df=None) -> pd.DataFrame:
    level = check_level(level)
    if df is not None and df not in DF_METHODS:
        raise ValueError(f"df: expected None or one of {DF_METHODS}, got {df!r}")
    est = rec.estimate
    se = rec.bse
    names = list(rec.param_names)
    if include_deterministic:
        for name, val in rec.deterministic.items():
            names += param_labels(name, np.shape(val))
            est = np.concatenate([est, np.ravel(val)])
            se = np.concatenate([se, np.ravel(rec.deterministic_se[name])])
    with np.errstate(divide="ignore", invalid="ignore"):
        z = est / se
    # a z-test of θ = 0 means something only where 0 is an interior point of the support
    # (a scale tested against 0 gives z = √(2n)); an entry fixed by its constraint (se = 0,
    # e.g. the unit diagonal of a correlation Cholesky factor) has no test either
    interior = np.r_[_interior_null(rec), np.ones(len(est) - len(rec.param_names), bool)]
    z = np.where(interior & (se > 0), z, np.nan)
    p = 2.0 * normal_sf(np.abs(z))
    lo, hi = _wald(est, se, level)
    k = len(rec.param_names)
    lo[:k], hi[:k] = _wald_auto(rec, level)
    cols = {"estimate": est, "se": se, "z": z, "p_value": p, "ci_lower": lo, "ci_upper": hi}
    if rec.reml:  # REML's fixed effects first, as lme4 lists them
        r_est, r_se, r_names = _restricted_rows(rec)
        with np.errstate(divide="ignore", invalid="ignore"):
            r_z = np.where(r_se > 0, r_est / r_se, np.nan)
        r_lo, r_hi = _wald(r_est, r_se, level)
        new = {"estimate": r_est, "se": r_se, "z": r_z, "p_value": 2.0 * normal_sf(np.abs(r_z))}
        new.update(ci_lower=r_lo, ci_upper=r_hi)
        cols = {k: np.concatenate([new[k], cols[k]]) for k in cols}
        names = r_names + names
    if df is not None:
        cols = _with_df(rec, cols, names, level)
    table = SummaryTable(cols, index=pd.Index(names, name="parameter"))
    table.attrs["reml"] = tuple(rec.reml)
    table.attrs["df"] = df or ""
    table.attrs["converged"] = bool(rec.converged)
    table.attrs["message"] = str(rec.message)
    table.attrs["issues"] = tuple(
        f"{i.kind} ({', '.join(i.sites)})" if i.sites else i.kind for i in rec.issues
    )
    return table


CONF_INT_METHODS = ("wald", "profile", "bootstrap")


def _with_df(rec, cols: dict, names: list, level: float) -> dict:
    """The fixed effects' rows as t-tests with Satterthwaite's degrees of freedom (lmerTest's
    table): standard errors from C(φ̂), t = estimate / se, p and intervals from t(df); the
    other rows keep their z-based entries with df = inf."""
    s = satterthwaite(rec)
    row = {n: i for i, n in enumerate(names)}
    out = {k: np.array(v, dtype=np.float64) for k, v in cols.items()}
    dfs = np.full(len(names), np.inf)
    for lab, est, se, nu in zip(s.names, s.estimate, s.se, s.df):
        i = row[lab]
        t = est / se if se > 0 else np.nan
        q = float(t_quantile((1.0 + level) / 2.0, nu)) if np.isfinite(nu) and nu > 0 else np.nan
        out["se"][i], out["z"][i], dfs[i] = se, t, nu
        out["p_value"][i] = 2.0 * float(t_sf(abs(t), nu))
        out["ci_lower"][i], out["ci_upper"][i] = est - q * se, est + q * se
    order = ["estimate", "se", "t", "df", "p_value", "ci_lower", "ci_upper"]
    out["t"], out["df"] = out.pop("z"), dfs
    return {k: out[k] for k in order}


def _restricted_rows(rec) -> tuple[np.ndarray, np.ndarray, list]:
    """Estimates, standard errors and labels of a REML fit's integrated fixed effects."""
    coords = dict(rec.problem.layout.coords)
    est, se, names = [], [], []
    for name in rec.reml:
        v = np.asarray(rec.params[name])
        est.append(np.ravel(v))
        se.append(np.ravel(np.asarray(rec.se[name])))
        names += param_labels(name, v.shape, coords)
    return np.concatenate(est), np.concatenate(se), names


def _interior_null(rec) -> np.ndarray:
    """Per flat parameter: the site's support is all of R (0 is an interior null)."""
    return np.array(
        [
            not b.site.bounded
            for b in rec.problem.layout.blocks()
            for _ in range(b.theta.stop - b.theta.start)
        ],
        bool,
    )


def _wald_auto(rec, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Wald intervals that stay inside the support: on the optimizer's scale mapped back for
    bounded sites with an elementwise bijection (a scale, a probability), constrained-scale
    θ̂ ± z·se elsewhere."""
    lo, hi = _wald(rec.estimate, rec.bse, level)
    bounded = ~_interior_null(rec) & (rec.problem.layout.elementwise_coords() >= 0)
    if bounded.any():
        lo_u, hi_u = _wald_unconstrained(rec, level)
        lo, hi = np.where(bounded, lo_u, lo), np.where(bounded, hi_u, hi)
    return lo, hi


def _wald_unconstrained(rec, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Wald on the optimizer's scale, endpoints mapped through each site's bijection."""
    q = normal_quantile(0.5 + level / 2.0)
    z = np.asarray(rec.z, dtype=np.float64)
    se_z = np.sqrt(np.diag(np.asarray(rec.cov_z)))
    layout = rec.problem.layout
    a = np.asarray(layout.theta(jnp.asarray(z - q * se_z)), dtype=np.float64)
    b = np.asarray(layout.theta(jnp.asarray(z + q * se_z)), dtype=np.float64)
    lo, hi = np.fmin(a, b), np.fmax(a, b)
    lo = np.where(np.isnan(a) | np.isnan(b), np.nan, lo)
    hi = np.where(np.isnan(a) | np.isnan(b), np.nan, hi)
    # Sites whose bijection mixes coordinates (simplex, Cholesky): constrained-scale Wald.
    elem = layout.elementwise_coords() >= 0
    lo_c, hi_c = _wald(rec.estimate, rec.bse, level)
    return np.where(elem, lo, lo_c), np.where(elem, hi, hi_c)


@float64
def conf_int(rec, *, level: float = 0.95, method: str = "wald", **options) -> pd.DataFrame:
    r"""Confidence intervals for every parameter of a fitted result.

    Parameters
    ----------
    rec : FitRecord
        A fitted result.
    level : float
        Confidence level in (0, 1).
    method : {"wald", "profile", "bootstrap"}
        ``"wald"``: :math:`\hat\theta \pm z\,\mathrm{se}` from the current
        covariance (``res.cov_type``). ``"profile"``: profile likelihood
        (:func:`mleppl._profile.profile_conf_int`). ``"bootstrap"``: from
        :func:`mleppl.bootstrap` draws.
    **options
        ``method="wald"``: ``scale="auto"`` (default: parameters with an unbounded
        support get :math:`\hat\theta \pm z\,\mathrm{se}` as statsmodels reports
        them; bounded ones, such as scales and probabilities, the interval built on
        the optimizer's scale and mapped back, so that it stays inside the support),
        ``"constrained"`` (:math:`\hat\theta \pm z\,\mathrm{se}` for every
        parameter) or ``"unconstrained"`` (:math:`\hat z \pm z\,\mathrm{se}_z` mapped
        back through each site's bijection; sites whose bijection is not elementwise
        keep the constrained-scale interval).
        ``method="bootstrap"``: ``boot=`` an existing :class:`BootstrapResult`,
        or ``n_boot=`` (default 1000), ``kind=``, ``rng_key=`` to draw one;
        ``interval="percentile"`` (default) or ``"bca"``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``param_names``, columns ``lower``, ``upper``.

    Examples
    --------
    >>> import numpy as np, numpyro, numpyro.distributions as dist
    >>> from mleppl import fit_mle
    >>> def model(y=None):
    ...     rate = numpyro.sample("rate", dist.Exponential(1.0))
    ...     with numpyro.plate("n", y.shape[0]):
    ...         numpyro.sample("y", dist.Exponential(rate), obs=y)
    >>> res = fit_mle(model, y=np.array([0.1, 0.2, 3.0]))
    >>> bool(res.conf_int(scale="constrained").loc["rate", "lower"] < 0)   # leaves the support
    True
    >>> bool(res.conf_int().loc["rate", "lower"] > 0)   # the default stays inside it
    True
    >>> bool(res.conf_int(scale="unconstrained").loc["rate", "lower"] > 0)
    True
    """
    level = check_level(level)
    if method not in CONF_INT_METHODS:
        raise ValueError(f"method: expected one of {CONF_INT_METHODS}, got {method!r}")
    index = pd.Index(list(rec.param_names), name="parameter")
    if method == "profile":
        if options:
            raise TypeError(f"conf_int(method='profile'): unexpected options {sorted(options)}")
        return profile_conf_int(rec, level=level)
    if method == "bootstrap":
        return bootstrap_conf_int(rec, level=level, **options)
    scale = options.pop("scale", "auto")
    if options:
        raise TypeError(f"conf_int(method='wald'): unexpected options {sorted(options)}")
    if scale == "auto":
        lo, hi = _wald_auto(rec, level)
    elif scale == "constrained":
        lo, hi = _wald(rec.estimate, rec.bse, level)
    elif scale == "unconstrained":
        lo, hi = _wald_unconstrained(rec, level)
    else:
        raise ValueError(f"scale: expected 'auto', 'constrained' or 'unconstrained', got {scale!r}")
    if rec.reml:  # REML's fixed effects first (support all of R: one scale), as in summary()
        r_est, r_se, r_names = _restricted_rows(rec)
        r_lo, r_hi = _wald(r_est, r_se, level)
        lo, hi = np.concatenate([r_lo, lo]), np.concatenate([r_hi, hi])
        index = pd.Index(r_names + list(index), name="parameter")
    return pd.DataFrame({"lower": lo, "upper": hi}, index=index)
