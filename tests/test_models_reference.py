"""Each library model on its bundled data against an independent reference.

References are other software (statsmodels, scikit-learn), published values
(NIST certified values, the Challenger and British-doctors papers), or
scipy.optimize on a negative log-likelihood written here from scratch in
NumPy/SciPy, with standard errors from a finite-difference Hessian of that
independent function.

Tolerance tiers (``REF_*`` from conftest, others defined here):

- ``REF_EST`` / ``REF_SE`` / ``REF_LL``: agreement with statsmodels' Newton
  fits, limited by its convergence tolerance.
- ``OPT_EST`` (1e-5 relative): scipy.optimize (BFGS / L-BFGS-B / Nelder–Mead
  polish) with a tight gradient tolerance on our own NLL.
- ``FD_SE`` (2e-3 relative): standard errors from a central-difference
  Hessian of the independent NLL (step 1e-4 relative: truncation error
  O(h²) ≈ 1e-8, rounding O(ε·NLL/h²) ≈ 1e-5 of the curvature).
- ``PUBLISHED``: the digits a paper prints (half a unit in the last digit).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import statsmodels.api as sm
from _library import bundled
from conftest import REF_EST, REF_LL, REF_SE, assert_rel
from scipy import optimize, special, stats

OPT_EST = 1e-5
FD_SE = 2e-3


def flat(res, sites=None) -> tuple[np.ndarray, np.ndarray]:
    sites = sites or list(res.params)
    est = np.concatenate([np.ravel(res.params[s]) for s in sites])
    se = np.concatenate([np.ravel(res.se[s]) for s in sites])
    return est, se


def fd_hessian(f, x, rel=1e-4):
    """Central-difference Hessian of a scalar function (independent of JAX)."""
    x = np.asarray(x, dtype=float)
    p = x.size
    h = rel * np.maximum(1.0, np.abs(x))
    H = np.empty((p, p))
    for i in range(p):
        for j in range(i, p):
            ei, ej = np.zeros(p), np.zeros(p)
            ei[i], ej[j] = h[i], h[j]
            v = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (4 * h[i] * h[j])
            H[i, j] = H[j, i] = v
    return H


def polish(f, x0):
    """Minimize an independent NLL tightly: BFGS, then Nelder–Mead, then BFGS again."""
    r = optimize.minimize(f, x0, method="BFGS", options={"gtol": 1e-9, "maxiter": 10000})
    r = optimize.minimize(
        f, r.x, method="Nelder-Mead", options={"xatol": 1e-11, "fatol": 1e-13, "maxiter": 40000}
    )
    r = optimize.minimize(f, r.x, method="BFGS", options={"gtol": 1e-10, "maxiter": 10000})
    return r.x, r.fun


def check_against_own_nll(res, nll, x_start, *, sites=None):
    """Independent optimum and FD standard errors of ``nll`` over the constrained parameters."""
    x, fun = polish(nll, x_start)
    est, se = flat(res, sites)
    assert_rel(-fun, res.loglik, REF_LL, "loglik vs independent NLL")
    assert_rel(est, x, OPT_EST, "estimates vs scipy.optimize")
    se_ref = np.sqrt(np.diag(np.linalg.inv(fd_hessian(nll, x))))
    assert_rel(se, se_ref, FD_SE, "standard errors vs finite-difference Hessian of the independent NLL")


def published(actual, printed, half_unit):
    """Agreement with a paper's printed digits: within half a unit in the last printed digit."""
    err = np.abs(np.asarray(actual, dtype=float) - np.asarray(printed))
    assert np.all(err <= np.asarray(half_unit)), f"{actual} vs published {printed}"


def sm_fit(model, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(disp=0, **kw)


def test_linear_regression_vs_ols():
    _, ex, res = bundled("linear_regression")
    (X,), y = ex.args, ex.kwargs["y"]
    ols = sm.OLS(y, X).fit()
    n, p = X.shape
    est, _ = flat(res, ["beta"])
    assert_rel(est, ols.params, REF_EST, "beta vs OLS")
    # MLE divides by n: SE_mle = SE_ols · sqrt((n - p) / n), σ̂² = RSS / n
    assert_rel(res.se["beta"], ols.bse * np.sqrt((n - p) / n), REF_SE, "beta SE vs OLS")
    assert_rel(res.params["sigma"], np.sqrt(ols.ssr / n), REF_EST, "sigma")
    assert_rel(res.loglik, ols.llf, REF_LL, "loglik")


def test_logistic_regression_vs_logit_and_published():
    _, ex, res = bundled("logistic_regression")
    (X,), y = ex.args, ex.kwargs["y"]
    ref = sm_fit(sm.Logit(y, X), method="newton", tol=1e-12)
    assert_rel(res.params["beta"], ref.params, REF_EST, "beta vs Logit")
    assert_rel(res.se["beta"], ref.bse, REF_SE, "SE vs Logit")
    assert_rel(res.loglik, ref.llf, REF_LL, "loglik")
    # Dalal, Fowlkes & Hoadley (1989): 15.043 − 0.2322·temperature, SE 7.379 and 0.1082
    published(res.params["beta"], [15.043, -0.2322], [5e-4, 5e-5])
    published(res.se["beta"], [7.379, 0.1082], [5e-4, 5e-5])


def test_softmax_regression_vs_mnlogit():
    _, ex, res = bundled("softmax_regression")
    (X,), y = ex.args, ex.kwargs["y"]
    ref = sm_fit(sm.MNLogit(y, X), method="newton", maxiter=100, tol=1e-12)
    assert_rel(res.params["beta"], np.asarray(ref.params), REF_EST, "beta vs MNLogit")
    assert_rel(res.se["beta"], np.asarray(ref.bse), REF_SE, "SE vs MNLogit")
    assert_rel(res.loglik, ref.llf, REF_LL, "loglik")


def test_probit_regression_vs_statsmodels():
    _, ex, res = bundled("probit_regression")
    (X,), y = ex.args, ex.kwargs["y"]
    ref = sm_fit(sm.Probit(y, X), method="newton", tol=1e-12)
    assert_rel(res.params["beta"], ref.params, REF_EST, "beta vs Probit")
    assert_rel(res.se["beta"], ref.bse, REF_SE, "SE vs Probit")
    assert_rel(res.loglik, ref.llf, REF_LL, "loglik")


def test_poisson_exposure_vs_glm_and_published():
    _, ex, res = bundled("poisson_exposure")
    (X, t), y = ex.args, ex.kwargs["y"]
    ref = sm.GLM(y, X, family=sm.families.Poisson(), exposure=t).fit(tol=1e-14)
    assert_rel(res.params["beta"], ref.params, REF_EST, "beta vs GLM")
    assert_rel(
        res.se["beta"], ref.bse, REF_SE, "SE vs GLM"
    )  # canonical link: observed = expected information
    assert_rel(res.loglik, ref.llf, REF_LL, "loglik")
    # Dobson & Barnett, Table 9.2
    published(res.params["beta"], [-10.79, 1.441, 2.376, -0.198, -0.308], [5e-3, 5e-4, 5e-4, 5e-4, 5e-4])


def test_negative_binomial_vs_statsmodels():
    _, ex, res = bundled("negative_binomial")
    (X,), y = ex.args, ex.kwargs["y"]
    mod = sm.NegativeBinomial(y, X, loglike_method="nb2")
    ref = sm_fit(mod, method="bfgs", maxiter=5000, gtol=1e-10)  # its Newton from the default start gives NaN
    ref = sm_fit(mod, start_params=ref.params, method="newton", maxiter=100, tol=1e-12)
    est, se = flat(res, ["beta", "alpha"])
    assert_rel(est, ref.params, REF_EST, "beta, alpha vs NegativeBinomial")
    assert_rel(se, ref.bse, REF_SE, "SE vs NegativeBinomial")
    # the exact Gamma–Poisson kernel (mleppl.core.kernels): NumPyro's own NegativeBinomial2
    # log-density, through jax.scipy.special.betaln, was off by ~1e-4 in total here
    assert_rel(res.loglik, ref.llf, REF_LL, "loglik")


def test_zero_inflated_poisson_vs_statsmodels():
    from statsmodels.discrete.count_model import ZeroInflatedPoisson

    _, ex, res = bundled("zero_inflated_poisson")
    (X, W), y = ex.args, ex.kwargs["y"]
    mod = ZeroInflatedPoisson(y, X, exog_infl=W, inflation="logit")
    ref = sm_fit(mod, method="bfgs", maxiter=5000, gtol=1e-10)
    ref = sm_fit(mod, start_params=ref.params, method="newton", maxiter=100, tol=1e-12)
    est, se = flat(res, ["gamma", "beta"])  # statsmodels orders the inflation parameters first
    assert_rel(est, ref.params, REF_EST, "gamma, beta vs ZeroInflatedPoisson")
    assert_rel(res.loglik, ref.llf, REF_LL, "loglik")
    # statsmodels' ZIP standard errors differ from the observed information by up to 0.7 %
    # (its Hessian is an approximation); the reference is a FD Hessian of an independent NLL.

    def nll(v):
        g, b = v[: W.shape[1]], v[W.shape[1] :]
        pi, mu = special.expit(W @ g), np.exp(X @ b)
        zero = np.log(pi + (1 - pi) * np.exp(-mu))
        return -np.sum(np.where(y == 0, zero, np.log1p(-pi) + stats.poisson.logpmf(y, mu)))

    assert_rel(-nll(est), res.loglik, REF_LL, "loglik vs independent NLL")
    se_ref = np.sqrt(np.diag(np.linalg.inv(fd_hessian(nll, est))))
    assert_rel(se, se_ref, FD_SE, "SE vs FD Hessian of an independent ZIP NLL")


def test_gamma_glm_vs_independent_nll_and_glm():
    _, ex, res = bundled("gamma_glm")
    (X,), y = ex.args, ex.kwargs["y"]

    def nll(x):
        mu, nu = np.exp(X @ x[:2]), x[2]
        return -np.sum(stats.gamma.logpdf(y, a=nu, scale=mu / nu)) if nu > 0 else np.inf

    check_against_own_nll(res, nll, np.array([np.log(y.mean()), 1.0, 10.0]))
    glm = sm.GLM(y, X, family=sm.families.Gamma(sm.families.links.Log())).fit(tol=1e-14)
    assert_rel(res.params["beta"], glm.params, REF_EST, "beta vs GLM Gamma (β̂ does not depend on ν)")


def test_robust_regression_vs_independent_nll():
    _, ex, res = bundled("robust_regression")
    (X,), y = ex.args, ex.kwargs["y"]
    p = X.shape[1]

    def nll(x):
        beta, sigma, nu = x[:p], x[p], x[p + 1]
        if sigma <= 0 or nu <= 0:
            return np.inf
        return -np.sum(stats.t.logpdf(y, df=nu, loc=X @ beta, scale=sigma))

    ols = np.linalg.lstsq(X, y, rcond=None)[0]
    check_against_own_nll(res, nll, np.concatenate([ols, [2.0, 3.0]]))


@pytest.mark.slow  # compile-heavy (fast-suite time): run by make test-slow
def test_weibull_survival_vs_independent_nll():
    _, ex, res = bundled("weibull_survival")
    (X, censored), t = ex.args, ex.kwargs["y"]
    d = ~censored
    p = X.shape[1]

    def nll(x):
        beta, k = x[:p], x[p]
        if k <= 0:
            return np.inf
        log_lam = X @ beta
        u = (t / np.exp(log_lam)) ** k
        return -np.sum(d * (np.log(k) - log_lam + (k - 1) * (np.log(t) - log_lam)) - u)

    check_against_own_nll(res, nll, np.concatenate([[np.log(t.mean())], np.zeros(p - 1), [1.0]]))


def test_ordinal_logistic_vs_ordered_model():
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    _, ex, res = bundled("ordinal_logistic")
    (X,), y = ex.args, ex.kwargs["y"]
    mod = OrderedModel(y, X, distr="logit")
    ref = sm_fit(mod, method="bfgs", maxiter=5000, gtol=1e-10)
    ref = sm_fit(mod, start_params=ref.params, method="newton", maxiter=100, tol=1e-12)
    p = X.shape[1]
    theta = np.asarray(ref.params)
    cut = np.cumsum(
        np.concatenate([theta[p : p + 1], np.exp(theta[p + 1 :])])
    )  # first cut, then log-increments
    assert_rel(res.params["beta"], theta[:p], REF_EST, "beta vs OrderedModel")
    assert_rel(res.params["cutpoints"], cut, REF_EST, "cut-points vs OrderedModel")
    assert_rel(res.loglik, ref.llf, REF_LL, "loglik")
    # cut-point SEs through the same delta method, from statsmodels' covariance
    K = cut.size
    J = np.zeros((p + K, p + K))
    J[:p, :p] = np.eye(p)
    for i in range(K):
        J[p + i, p] = 1.0
        for j in range(1, i + 1):
            J[p + i, p + j] = np.exp(theta[p + j])
    se_ref = np.sqrt(np.diag(J @ np.asarray(ref.cov_params()) @ J.T))
    assert_rel(flat(res, ["beta", "cutpoints"])[1], se_ref, REF_SE, "SE vs OrderedModel")


def test_nonlinear_regression_vs_nist_certified():
    mod, ex, res = bundled("nonlinear_regression")
    (x,), y = ex.args, ex.kwargs["y"]
    cert = mod.CERTIFIED
    n, p = x.size, 3
    assert_rel(res.params["b"], cert["b"], 1e-8, "b vs NIST certified")  # NIST certifies 11 digits
    assert_rel(res.params["sigma"] ** 2, cert["rss"] / n, 1e-8, "σ̂² = RSS/n")
    # NIST's SEs are Gauss–Newton, s²(JᵀJ)⁻¹ with s² = RSS/(n − p): recompute them at our estimate
    b = res.params["b"]
    e = np.exp(b[1] - b[2] * x)
    J = np.column_stack([1 / (1 + e), -b[0] * e / (1 + e) ** 2, b[0] * x * e / (1 + e) ** 2])
    se_gn = np.sqrt(np.diag(np.linalg.inv(J.T @ J)) * cert["rss"] / (n - p))
    assert_rel(se_gn, cert["se"], 1e-7, "Gauss–Newton SE at our estimate vs NIST certified SE")

    # our SEs are observed-information ones (they include the residual-curvature term)
    def nll(v):
        bb, s = v[:3], v[3]
        f = bb[0] / (1 + np.exp(bb[1] - bb[2] * x))
        return -np.sum(stats.norm.logpdf(y, f, s)) if s > 0 else np.inf

    check_against_own_nll(res, nll, np.concatenate([cert["b"], [1.0]]))


def test_ar1_vs_statsmodels_arima():
    from statsmodels.tsa.arima.model import ARIMA

    _, ex, res = bundled("ar1")
    y = ex.kwargs["y"]
    ours = np.array([res.params["mu"], res.params["phi"], res.params["sigma"] ** 2])
    arima = ARIMA(y, order=(1, 0, 0), trend="c")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        own = arima.fit()
        ref = arima.fit(start_params=ours, cov_type="oim")
    # the Kalman-filter exact likelihood, evaluated independently at our estimate
    assert_rel(arima.loglike(ours), res.loglik, REF_LL, "exact loglik vs Kalman filter")
    # statsmodels' own optimizer stops 4.7e-4 short of the maximum on these data
    assert res.loglik >= own.llf - 1e-9
    assert_rel(own.params, ours, 1e-2, "statsmodels' own estimate (stops early)")
    mu, phi, s2 = np.asarray(ref.params)
    assert_rel(res.loglik, ref.llf, REF_LL, "loglik vs statsmodels restarted at our estimate")
    est = [res.params["mu"], res.params["phi"], res.params["sigma"]]
    assert_rel(est, [mu, phi, np.sqrt(s2)], OPT_EST, "μ, φ, σ")
    # statsmodels' own OIM standard errors (a numerical Hessian) agree to 0.2 %; the tighter
    # check is our FD Hessian of the Kalman-filter likelihood in (μ, φ, σ)
    se = [res.se["mu"], res.se["phi"], res.se["sigma"]]
    assert_rel(se, [ref.bse[0], ref.bse[1], ref.bse[2] / (2 * np.sqrt(s2))], 5e-3, "SEs vs statsmodels OIM")
    x = np.array(est)
    se_ref = np.sqrt(np.diag(np.linalg.inv(fd_hessian(lambda v: -arima.loglike([v[0], v[1], v[2] ** 2]), x))))
    assert_rel(se, se_ref, FD_SE, "SEs vs FD Hessian of the Kalman-filter likelihood")


def test_gaussian_mixture_vs_sklearn_em():
    from sklearn.mixture import GaussianMixture

    _, ex, res = bundled("gaussian_mixture")
    y = ex.kwargs["y"]
    gm = GaussianMixture(2, tol=1e-14, max_iter=100000, reg_covar=0.0, random_state=0, n_init=3).fit(
        y[:, None]
    )
    order = np.argsort(gm.means_.ravel())
    w, mu, sd = gm.weights_[order], gm.means_.ravel()[order], np.sqrt(gm.covariances_.ravel()[order])
    assert_rel(res.loglik, gm.score(y[:, None]) * y.size, 1e-9, "loglik vs EM")
    assert_rel(res.params["mu"], mu, OPT_EST, "μ vs EM")
    assert_rel(res.params["sigma"], sd, OPT_EST, "σ vs EM")
    assert_rel(res.params["weights"], w, OPT_EST, "weights vs EM")

    def nll(v):
        w1, m1, m2, s1, s2 = v
        if not (0 < w1 < 1 and s1 > 0 and s2 > 0):
            return np.inf
        return -np.sum(
            np.logaddexp(
                np.log(w1) + stats.norm.logpdf(y, m1, s1), np.log1p(-w1) + stats.norm.logpdf(y, m2, s2)
            )
        )

    v = np.array([w[0], mu[0], mu[1], sd[0], sd[1]])
    se_ref = np.sqrt(np.diag(np.linalg.inv(fd_hessian(nll, v))))
    got = np.array([res.se["weights"][0], *res.se["mu"], *res.se["sigma"]])
    assert_rel(got, se_ref, FD_SE, "SEs vs FD Hessian of an independent mixture NLL")


def _network_nll_and_grad(X, y):
    """Cross-entropy of the 2-tanh-unit network and its gradient by hand-written backpropagation.

    Parameters flattened as ``[W (row-major), b, v, c]``, the order of ``res.params``.
    """
    d = X.shape[1]
    H = 2

    def unpack(x):
        return x[: d * H].reshape(d, H), x[d * H : d * H + H], x[d * H + H : d * H + 2 * H], x[-1]

    def nll(x):
        W, b, v, c = unpack(x)
        if not (np.all(v > 0) and b[0] < b[1]):
            return np.inf
        eta = np.tanh(X @ W + b) @ v + c
        return float(np.sum(np.logaddexp(0.0, eta) - y * eta))

    def grad(x):
        W, b, v, c = unpack(x)
        h = np.tanh(X @ W + b)
        r = special.expit(h @ v + c) - y  # d NLL / d eta
        da = np.outer(r, v) * (1.0 - h**2)  # d NLL / d (XW + b)
        return np.concatenate([(X.T @ da).ravel(), da.sum(0), h.T @ r, [r.sum()]])

    return nll, grad


def test_neural_network_vs_independent_cross_entropy_and_sklearn():
    from sklearn.metrics import log_loss
    from sklearn.neural_network import MLPClassifier

    _, ex, res = bundled("neural_network")
    (X,), y = ex.args, ex.kwargs["y"]
    nll, grad = _network_nll_and_grad(X, y)
    est, se = flat(res)
    # scipy BFGS with an analytic gradient, from a start 2 % away from our optimum
    x0 = est * (1.0 + 0.02 * np.resize([1.0, -1.0, 0.5], est.size))
    r = optimize.minimize(nll, x0, jac=grad, method="BFGS", options={"gtol": 1e-10, "maxiter": 10000})
    assert np.max(np.abs(grad(r.x))) < 1e-6, r.message
    assert_rel(-r.fun, res.loglik, REF_LL, "loglik vs independent cross-entropy")
    assert_rel(est, r.x, OPT_EST, "estimates vs scipy BFGS")
    se_ref = np.sqrt(np.diag(np.linalg.inv(fd_hessian(nll, r.x))))
    assert_rel(se, se_ref, FD_SE, "SEs vs finite-difference Hessian of the independent cross-entropy")

    # scikit-learn's network: its forward pass and log-loss at our estimate, then its own
    # cross-entropy training (L-BFGS, no weight decay) warm-started at the perturbed start
    d = X.shape[1]
    mlp = MLPClassifier(
        hidden_layer_sizes=(2,), activation="tanh", solver="lbfgs", alpha=0.0, tol=1e-14, max_iter=20000
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the one-step fit that only allocates the network
        mlp.set_params(max_iter=1).fit(X, y)

    def set_weights(x):
        mlp.coefs_ = [x[: 2 * d].reshape(d, 2).copy(), x[2 * d + 2 : 2 * d + 4, None].copy()]
        mlp.intercepts_ = [x[2 * d : 2 * d + 2].copy(), x[-1:].copy()]

    set_weights(est)
    ll_sk = -log_loss(y, mlp.predict_proba(X)[:, 1], normalize=False)
    assert_rel(ll_sk, res.loglik, REF_LL, "loglik vs scikit-learn's network at our estimate")
    set_weights(x0)
    mlp.set_params(max_iter=20000, warm_start=True).fit(X, y)
    sk = np.concatenate(
        [mlp.coefs_[0].ravel(), mlp.intercepts_[0], mlp.coefs_[1].ravel(), mlp.intercepts_[1]]
    )
    # scikit-learn's L-BFGS stops on scipy's default relative-decrease test (ftol ≈ 2e-9),
    # 1e-5 of the log-likelihood short of the maximum; it must not get above it
    assert -mlp.loss_ * y.size <= res.loglik + 1e-9 * abs(res.loglik)
    assert_rel(-mlp.loss_ * y.size, res.loglik, 1e-4, "loglik of MLPClassifier's own training")
    assert_rel(sk, est, 0.1, "estimates of MLPClassifier's own training (stops early)")


@pytest.mark.slow  # 60-80 s of 8-start network fits: a study, run by make test-slow
def test_neural_network_multistart_reaches_the_same_maximum():
    """The documented from-scratch recipe: 8 starts with the intercept at the logit of the base rate."""
    from mleppl import MultimodalityWarning, fit_mle

    mod, ex, res = bundled("neural_network")
    (X,), y = ex.args, ex.kwargs["y"]
    # A network has genuine local optima besides its maximum: a MultimodalityWarning is
    # emitted when a *converged* start ends at one of them (which starts do depends on the
    # optimizer's path); starts that stop unconverged are not optima and do not warn.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MultimodalityWarning)
        multi = fit_mle(mod.model, X, y=y, n_starts=8, init={"c": special.logit(y.mean())})
    assert_rel(multi.loglik, res.loglik, REF_LL, "best of 8 starts vs the bundled fit")
    assert_rel(flat(multi)[0], flat(res)[0], OPT_EST, "estimates")
    best = multi.optima[multi.optima.converged & (multi.optima.optimum == 0)]
    assert len(best) >= 3, multi.optima
    # no start, converged or not, got above the maximum (none is running off to a better step fit)
    assert multi.optima.loglik.max() <= res.loglik + 1e-8 * abs(res.loglik)
