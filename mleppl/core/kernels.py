"""Exact log-densities for the distributions whose NumPyro log-density is inexact or slow to differentiate.

NumPyro's ``GammaPoisson`` (``NegativeBinomial2``, ``NegativeBinomialProbs``,
``NegativeBinomialLogits`` and the zero-inflated ``NegativeBinomial2``) evaluates its
log-pmf through ``jax.scipy.special.betaln``. In float64 that function is off by up to
~1e-6 where its larger argument is just above 8 (``betaln(8.1, 1) - scipy = 8.9e-7``,
jax 0.12), so a log-likelihood of a few thousand counts is off by ~1e-4, and
differentiating it twice costs ~5× the same derivatives of the log-gamma form below
(its series branch and its small-argument branch are both differentiated). These
kernels are what no library provides here: the textbook log-gamma form, with the
difference of log-gammas taken from Stirling's series where the concentration is large
(the plain difference loses ``eps·c·log c`` there), and log-gamma's second derivative
from a short series (:func:`trigamma`) instead of JAX's 25× dearer ``polygamma``.

The same holds for every NumPyro log-density that calls ``betaln``: ``BetaBinomial``,
``BetaNegativeBinomial`` and ``Beta`` (with ``BetaProportion``). ``betaln`` (jax 0.12,
``jax/_src/scipy/betaln.py``) is ~500 lines of ``where``-selected regimes (three
``lgamma`` regimes, two Stirling regimes, reflection for negative arguments, bit-level
exponent splitting), and AD differentiates every branch at every order: the 4th-order
derivative of 50 beta-binomial terms (what the Laplace fit of a GLMM differentiates)
took 120–180 s (lowering and compiling) and 6.2 GB with NumPyro's log-density, 3 s and
0.5 GB with :func:`beta_binomial_log_prob` (beta-negative-binomial: 70–90 s and 2.9 GB
against 2 s; ``benchmarks/bench_kernels_compile.py``). Their kernels here are sums of log rising
factorials, :func:`lgamma_ratio`, which is also what keeps them exact where the
concentrations are large (the beta-binomial tends to the binomial there, and NumPyro's
difference of two ``betaln`` loses ``eps·(α+β)``: 1e-6 at α + β = 10¹⁰). The other
log-densities with special functions (``lgamma`` in ``Gamma``, ``StudentT``,
``DirichletMultinomial``, ``NegativeBinomialLogits``; ``i0e`` in ``VonMises``) compile
their 4th-order derivative in about a second and are left as they are.

Every derivative here up to the 4th is given rather than differentiated: log Γ's are ψ,
ψ₁, ψ₂, ψ₃ (each one short series, :func:`_polygamma_series`), and those of
:func:`lgamma_ratio` in c are the differences ψ_m(c + y) − ψ_m(c), themselves from the
asymptotic series where c is large; AD of the series and of the Stirling form had made
the graph of a 4th-order derivative several times larger (a beta-binomial GLMM's Laplace
fit: 25 → 14 s).

The adapter (:mod:`mleppl.adapters.numpyro`) puts them in place of NumPyro's
log-density on the likelihood's observed sites; sampling, support, moments and the
NUTS comparison keep NumPyro's distributions untouched.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero
from jax.scipy.special import digamma, gammaln, xlog1py, xlogy

__all__ = [
    "STIRLING_FROM",
    "bernoulli_logits_log_prob",
    "beta_binomial_log_prob",
    "beta_log_prob",
    "binomial_logits_log_prob",
    "beta_negative_binomial_log_prob",
    "gamma_poisson_log_prob",
    "lgamma_ratio",
    "log_beta",
    "log_binom",
    "trigamma",
]

# ψ₁(t) ~ 1/t + 1/(2t²) + Σ B₂ₖ / t^(2k+1): the Bernoulli numbers B₂ … B₁₄.
_TRIGAMMA_SERIES = (1.0 / 6.0, -1.0 / 30.0, 1.0 / 42.0, -1.0 / 30.0, 5.0 / 66.0, -691.0 / 2730.0, 7.0 / 6.0)
_TRIGAMMA_SHIFT = 6


def trigamma(x):
    r"""ψ₁(x) = d²/dx² log Γ(x) for x > 0, to ~1e-12 relative.

    Notes
    -----
    ψ₁(x) = Σ_{k<6} 1/(x+k)² + ψ₁(x+6) (recurrence), and at t = x + 6 ≥ 6 the asymptotic
    series :math:`1/t + 1/(2t^2) + \sum_{k=1}^{7} B_{2k}/t^{2k+1}`, whose first omitted term
    is below 4.2e-13 (measured: within 2e-14 of SciPy over 1e-6–1e6). JAX's
    ``polygamma(1, x)`` (through the Hurwitz zeta function) cost 49 ns per element here
    against 2 ns for this one, and it is the second derivative of every log-gamma term of
    a negative-binomial likelihood: the exact Hessian of 400 NB2 fits of 200 counts went
    from 13.3 to 10.2 ms.

    Examples
    --------
    >>> import jax
    >>> from scipy.special import polygamma
    >>> with jax.enable_x64(True):
    ...     got = float(trigamma(0.3))
    >>> bool(abs(got - polygamma(1, 0.3)) < 1e-12 * polygamma(1, 0.3))
    True
    """
    x = jnp.asarray(x)
    head = sum(1.0 / (x + k) ** 2 for k in range(_TRIGAMMA_SHIFT))
    t = x + _TRIGAMMA_SHIFT
    r = 1.0 / t
    r2 = r * r
    tail = 0.0
    for b in reversed(_TRIGAMMA_SERIES):
        tail = tail * r2 + b
    return head + r + 0.5 * r2 + r * r2 * tail


def _polygamma_series(m: int, x):
    """ψ_m(x) = d^(m+1)/dx^(m+1) log Γ(x) for m ≥ 1, x > 0: the series of :func:`trigamma`
    for any m (measured within 4e-14 of SciPy over 1e-6–1e6 for m ≤ 4)."""
    x = jnp.asarray(x)
    sign, fact = (-1.0) ** (m + 1), float(math.factorial(m))
    head = sum(1.0 / (x + k) ** (m + 1) for k in range(_TRIGAMMA_SHIFT))
    t = x + _TRIGAMMA_SHIFT
    r = 1.0 / t
    r2 = r * r
    # Σ_k B₂ₖ (2k+m−1)!/(2k)! / t^(2k+m): coefficients of r^m · r2^k
    coeffs = [
        b * math.factorial(2 * k + m - 1) / math.factorial(2 * k) for k, b in enumerate(_TRIGAMMA_SERIES, 1)
    ]
    tail = 0.0
    for c in reversed(coeffs):
        tail = tail * r2 + c
    lead = math.factorial(m - 1) + 0.5 * fact * r + r2 * tail
    return sign * (fact * head + r**m * lead)


@functools.cache
def _custom_polygamma(m: int, top: int = 4):
    """ψ_m whose derivative is ψ_(m+1), as a custom JVP up to ψ_top (series beyond): every
    derivative of :func:`_gammaln` up to the 5th is one short series instead of AD of the
    series below it (a beta-binomial GLMM's Laplace fit with six log-gammas a row, tower
    against AD of :func:`trigamma`: 17.4 → 12.3 s)."""
    series = trigamma if m == 1 else functools.partial(_polygamma_series, m)
    if m >= top:
        return series
    fn = jax.custom_jvp(series)
    below = _custom_polygamma(m + 1, top)

    @fn.defjvp
    def _jvp(primals, tangents):
        (x,), (tx,) = primals, tangents
        return fn(x), below(x) * tx

    return fn


_trigamma = _custom_polygamma(1)


@jax.custom_jvp
def _digamma(x):
    return digamma(x)


@_digamma.defjvp
def _digamma_jvp(primals, tangents):
    (x,), (tx,) = primals, tangents
    return _digamma(x), _trigamma(x) * tx


@jax.custom_jvp
def _gammaln(x):
    """log Γ(x) whose derivatives are ψ, the fast :func:`trigamma` and the same series for
    ψ₂, ψ₃ and ψ₄ (x > 0)."""
    return gammaln(x)


@_gammaln.defjvp
def _gammaln_jvp(primals, tangents):
    (x,), (tx,) = primals, tangents
    return _gammaln(x), _digamma(x) * tx


# Above this concentration log Γ(c + y) − log Γ(c) is taken from Stirling's series with
# three correction terms: the truncation error is below 1/(1680·c⁷) ≈ 6e-18 at c = 100,
# while the plain difference of log-gammas has lost ~eps·c·log c ≈ 1e-13 there.
STIRLING_FROM = 100.0


def _stirling_correction(r):
    """log Γ(x) − [(x − ½) log x − x + ½ log 2π] at r = 1/x, three terms (x ≥ 100)."""
    r2 = r * r
    return r * (1.0 / 12.0 - r2 * (1.0 / 360.0 - r2 / 1260.0))


def _lgamma_ratio_stirling(c, y):
    """log Γ(c + y) − log Γ(c) from Stirling's series (c ≥ 100)."""
    x = c + y  # ≥ 100: plain logs (xlogy's custom derivative rule made the Hessian 2× dearer)
    out = (c - 0.5) * jnp.log1p(y / c) + y * jnp.log(x) - y
    return out + _stirling_correction(1.0 / x) - _stirling_correction(1.0 / c)


# B₂ … B₆ for ψ_m(c + y) − ψ_m(c) at c ≥ 100: the first omitted term is below 2e-16 of
# the leading one for m ≤ 3 (the 4th derivative of log Γ(c + y) − log Γ(c))
_DIFF_BERNOULLI = _TRIGAMMA_SERIES[:3]


def _psi_diff_asymptotic(m: int, c, y):
    """ψ_m(c + y) − ψ_m(c) for c ≥ 100 and m ≥ 0, term by term of the asymptotic series.

    Each difference of powers is ``(c+y)^-j − c^-j = −c^-j · y/(c+y) · Σ_{i<j} q^i`` with
    q = c/(c+y) ∈ (0, 1]: a sum of positive terms, no cancellation and no transcendental.
    """
    r = 1.0 / c
    w = y / (c + y)
    q = c / (c + y)
    top = 2 * len(_DIFF_BERNOULLI) + max(m, 1)
    pdiff, rj, sj = {}, r, 1.0  # pdiff[j] = (c + y)^-j − c^-j
    for j in range(1, top + 1):
        pdiff[j] = -rj * w * sj
        rj, sj = rj * r, 1.0 + q * sj
    if m == 0:  # ψ(x) ~ log x − 1/(2x) − Σ B₂ₖ / (2k x^2k)
        out = jnp.log1p(y * r) - 0.5 * pdiff[1]
        for k, b in enumerate(_DIFF_BERNOULLI, 1):
            out = out - (b / (2 * k)) * pdiff[2 * k]
        return out
    # ψ_m(x) ~ (−1)^(m+1) [(m−1)!/x^m + m!/(2x^(m+1)) + Σ B₂ₖ (2k+m−1)!/(2k)! / x^(2k+m)]
    out = math.factorial(m - 1) * pdiff[m] + 0.5 * math.factorial(m) * pdiff[m + 1]
    for k, b in enumerate(_DIFF_BERNOULLI, 1):
        out = out + (b * math.factorial(2 * k + m - 1) / math.factorial(2 * k)) * pdiff[2 * k + m]
    return (-1.0) ** (m + 1) * out


def _psi(m: int):
    """ψ_m with the custom-JVP tower (m = 0: digamma)."""
    return _digamma if m == 0 else _custom_polygamma(m)


@functools.cache
def _ratio_tower(m: int, top: int = 3):
    """F_m(c, y) = ψ_m(c + y) − ψ_m(c) (F₋₁ = log Γ(c + y) − log Γ(c)), whose JVP is
    ``F_(m+1)(c, y)·ċ + ψ_(m+1)(c + y)·ẏ`` up to F_top (AD of its formulas beyond).

    Each order is then two short closed forms selected at c = :data:`STIRLING_FROM`, where
    4th-order AD of the Stirling form had been the larger part of a beta-binomial GLMM's
    compile time (its graph 2× that of the two log-gammas it replaces)."""

    def value(c, y):
        big = c >= STIRLING_FROM
        cs = jnp.where(big, c, STIRLING_FROM)  # each branch at a safe argument
        cd = jnp.where(big, 1.0, c)
        if m < 0:
            far, near = _lgamma_ratio_stirling(cs, y), _gammaln(cd + y) - _gammaln(cd)
        else:
            far, near = _psi_diff_asymptotic(m, cs, y), _psi(m)(cd + y) - _psi(m)(cd)
        return jnp.where(big, far, near)

    if m >= top:
        return value
    fn = jax.custom_jvp(value)
    following, psi_next = _ratio_tower(m + 1, top), _psi(m + 1)

    def jvp(primals, tangents):
        (c, y), (tc, ty) = primals, tangents
        out = fn(c, y)
        t = jnp.zeros_like(out)
        if not isinstance(tc, SymbolicZero):
            t = t + following(c, y) * tc
        if not isinstance(ty, SymbolicZero):
            t = t + psi_next(c + y) * ty
        return out, t

    fn.defjvp(jvp, symbolic_zeros=True)
    return fn


def lgamma_ratio(c, y):
    """log Γ(c + y) − log Γ(c) for c > 0, y ≥ 0, accurate to a few ulps of the result.

    Notes
    -----
    For c ≥ 100, Stirling's series gives the difference without cancellation:

    .. math:: \\log\\frac{\\Gamma(c+y)}{\\Gamma(c)} = (c - \\tfrac12)\\,\\mathrm{log1p}(y/c)
              + y\\log(c+y) - y + R(c+y) - R(c),

    with R the series remainder of :func:`_stirling_correction`; below, the plain
    difference of log-gammas. Both branches are evaluated (the unused one at a safe
    argument). Its derivatives are given, not differentiated: in c the differences
    ψ_m(c + y) − ψ_m(c) (for c ≥ 100 from the asymptotic series term by term, so that they
    keep their relative accuracy too), in y ψ_m(c + y), each from a short series
    (:func:`trigamma`), up to the 4th order; exact and finite at every order.

    Examples
    --------
    >>> import math, jax
    >>> with jax.enable_x64(True):
    ...     got = float(lgamma_ratio(1e8, 10.0))
    >>> ref = math.fsum(math.log(1e8 + k) for k in range(10))  # Γ(c+10)/Γ(c) = c(c+1)…(c+9)
    >>> abs(got - ref) < 1e-12
    True
    """
    c, y = jnp.asarray(c), jnp.asarray(y)
    dtype = jnp.result_type(c, y)
    if not jnp.issubdtype(dtype, jnp.inexact):
        dtype = jnp.result_type(float)
    return _ratio_tower(-1)(c.astype(dtype), y.astype(dtype))


def binomial_logits_log_prob(logits, total_count, value):
    r"""log p(y) of the binomial with logits x: smooth in x at every point.

    Notes
    -----
    .. math:: \log p(y) = \log\binom{n}{y} + y\,x - n\,\mathrm{softplus}(x)

    with :math:`\mathrm{softplus}(x) = \log(1 + e^x)` as ``logaddexp(x, 0)``. NumPyro writes
    it with ``clip(x, 0)`` and ``exp(-|x|)``, whose derivatives at x = 0 are 0 instead of
    n/2: the gradient is wrong exactly at logit 0, where a fit started at the origin is (an
    inner Newton over the fixed effects of a REML fit went nowhere from there).

    Examples
    --------
    >>> import jax
    >>> with jax.enable_x64(True):
    ...     g = float(jax.grad(lambda x: binomial_logits_log_prob(x, 10.0, 3.0))(0.0))
    >>> g  # y - n/2
    -2.0
    """
    x, n, y = jnp.asarray(logits), jnp.asarray(total_count), jnp.asarray(value)
    log_binom_ = gammaln(n + 1.0) - gammaln(y + 1.0) - gammaln(n - y + 1.0)
    return log_binom_ + y * x - n * jnp.logaddexp(x, 0.0)


def bernoulli_logits_log_prob(logits, value):
    r"""log p(y) of the Bernoulli with logits x, :math:`y\,x - \mathrm{softplus}(x)`, smooth in x
    (NumPyro's form has derivative y instead of y − 1/2 at x = 0; see
    :func:`binomial_logits_log_prob`).

    Examples
    --------
    >>> import jax
    >>> with jax.enable_x64(True):
    ...     float(jax.grad(lambda x: bernoulli_logits_log_prob(x, 1.0))(0.0))
    0.5
    """
    x, y = jnp.asarray(logits), jnp.asarray(value)
    return y * x - jnp.logaddexp(x, 0.0)


def gamma_poisson_log_prob(concentration, rate, value):
    """log p(y) of the Gamma–Poisson (negative binomial) with NumPyro's parametrization.

    Notes
    -----
    With concentration c and rate r (mean μ = c / r):

    .. math:: \\log p(y) = \\log\\frac{\\Gamma(c+y)}{\\Gamma(c)} - \\log y!
              - c\\,\\mathrm{log1p}(1/r) - y\\,\\mathrm{log1p}(r),

    i.e. ``c log(c/(c+μ)) + y log(μ/(c+μ))`` written so that neither a large μ nor a
    large c overflows or cancels (NumPyro's form overflowed to log p > 0 at μ = 1e114).

    Examples
    --------
    >>> import math, jax
    >>> c, mu, y = 2.0, 3.0, 4
    >>> with jax.enable_x64(True):
    ...     got = float(gamma_poisson_log_prob(c, c / mu, float(y)))
    >>> ref = math.log(math.comb(y + 1, y)) + c * math.log(c / (c + mu)) + y * math.log(mu / (c + mu))
    >>> abs(got - ref) < 1e-14
    True
    """
    c, r, y = jnp.asarray(concentration), jnp.asarray(rate), jnp.asarray(value)
    return lgamma_ratio(c, y) - gammaln(y + 1.0) - c * jnp.log1p(1.0 / r) - xlog1py(y, r)


def log_beta(a, b):
    """log B(a, b) = log Γ(a) + log Γ(b) − log Γ(a + b) for a, b > 0, with cheap derivatives.

    Notes
    -----
    With p = min(a, b) and q = max(a, b),

    .. math:: \\log B(a, b) = \\log\\Gamma(p) - \\log\\frac{\\Gamma(q+p)}{\\Gamma(q)},

    the ratio from :func:`lgamma_ratio` (Stirling's series for q ≥ 100), so that a large q
    does not cancel ``log Γ(q)`` against ``log Γ(q + p)``: for q ≥ 100 the result is within
    a few tens of ulps of itself (``log Γ(p)`` and the ratio are of the same order
    ``p log p``, their difference at least ``p log 2``), below it within ``eps·q log q`` (the
    plain difference). Derivatives are those of log-gammas (ψ and the series of
    :func:`trigamma`), against the ~500 lines of selected regimes of
    ``jax.scipy.special.betaln`` that AD differentiates at every order.

    Examples
    --------
    >>> import math, jax
    >>> with jax.enable_x64(True):
    ...     got = float(log_beta(3.0, 1e9))
    >>> ref = math.log(2.0) - math.fsum(math.log(1e9 + k) for k in range(3))  # B(3, q) = 2 / (q(q+1)(q+2))
    >>> abs(got - ref) < 1e-14 * abs(ref)
    True
    """
    a, b = jnp.asarray(a), jnp.asarray(b)
    p, q = jnp.minimum(a, b), jnp.maximum(a, b)
    return _gammaln(p) - lgamma_ratio(q, p)


def log_binom(n, k):
    """log C(n, k) = log Γ(n + 1) − log Γ(k + 1) − log Γ(n − k + 1) for 0 ≤ k ≤ n.

    Notes
    -----
    With m = min(k, n − k), :math:`\\log\\binom{n}{k} = \\log\\frac{\\Gamma(n-m+1+m)}{\\Gamma(n-m+1)}
    - \\log m!`, the ratio from :func:`lgamma_ratio`: three log-gammas of a large n lose
    ``eps·n log n`` (3e-9 at n = 10⁶, where ``log C(10⁶, 3)`` is 39.6); this form keeps a
    few ulps of the result.

    Examples
    --------
    >>> import math, jax
    >>> with jax.enable_x64(True):
    ...     got = float(log_binom(1e6, 3.0))
    >>> ref = math.log(math.comb(10**6, 3))
    >>> abs(got - ref) < 1e-14 * ref
    True
    """
    n, k = jnp.asarray(n), jnp.asarray(k)
    m = jnp.minimum(k, n - k)
    return lgamma_ratio(n - m + 1.0, m) - gammaln(m + 1.0)


def beta_binomial_log_prob(concentration1, concentration0, total_count, value):
    """log p(y) of the beta-binomial with NumPyro's parametrization (α = concentration1).

    Notes
    -----
    With α = concentration1, β = concentration0 and n = total_count,

    .. math:: \\log p(y) = \\log\\binom{n}{y} + \\log\\frac{B(y+\\alpha,\\, n-y+\\beta)}{B(\\alpha, \\beta)}
              = \\log\\binom{n}{y} + \\log\\frac{\\Gamma(\\alpha+y)}{\\Gamma(\\alpha)}
              + \\log\\frac{\\Gamma(\\beta+n-y)}{\\Gamma(\\beta)}
              - \\log\\frac{\\Gamma(\\alpha+\\beta+n)}{\\Gamma(\\alpha+\\beta)},

    each ratio of log-gammas (a log rising factorial) from :func:`lgamma_ratio` and the
    coefficient from :func:`log_binom`. No term is of the order of the concentrations: as
    α + β → ∞ at a fixed mean the three ratios tend to ``y log α``, ``(n − y) log β`` and
    ``n log(α + β)``, and the density to the binomial's, where NumPyro's two ``betaln`` of
    order ``(α + β) log(α + β)`` cancel (``eps·(α+β)`` lost).

    Examples
    --------
    >>> import math, jax
    >>> a, b, n, y = 2.0, 3.0, 5, 2
    >>> with jax.enable_x64(True):
    ...     got = float(beta_binomial_log_prob(a, b, float(n), float(y)))
    >>> rising = lambda x, k: math.prod(x + i for i in range(k))  # Γ(x+k)/Γ(x)
    >>> ref = math.log(math.comb(n, y) * rising(a, y) * rising(b, n - y) / rising(a + b, n))
    >>> abs(got - ref) < 1e-14
    True
    """
    a, b = jnp.asarray(concentration1), jnp.asarray(concentration0)
    n, y = jnp.asarray(total_count), jnp.asarray(value)
    return log_binom(n, y) + lgamma_ratio(a, y) + lgamma_ratio(b, n - y) - lgamma_ratio(a + b, n)


def beta_negative_binomial_log_prob(concentration1, concentration0, n, value):
    """log p(k) of the beta-negative-binomial with NumPyro's parametrization.

    Notes
    -----
    With α = concentration1, β = concentration0 (NumPyro's
    ``p(k) = C(n + k − 1, k) B(α + k, β + n) / B(α, β)``),

    .. math:: \\log p(k) = \\log\\frac{\\Gamma(n+k)}{\\Gamma(n)} - \\log k!
              + \\log\\frac{\\Gamma(\\alpha+k)}{\\Gamma(\\alpha)}
              + \\log\\frac{\\Gamma(\\beta+n)}{\\Gamma(\\beta)}
              - \\log\\frac{\\Gamma(\\alpha+\\beta+n+k)}{\\Gamma(\\alpha+\\beta)},

    every ratio of log-gammas from :func:`lgamma_ratio` (n, α and β may all be parameters:
    its derivatives in either argument are those of log-gammas). SciPy's
    ``betanbinom(n, a, b)`` is this distribution with ``a = β``, ``b = α``.

    Examples
    --------
    >>> import math, jax
    >>> a, b, n, k = 2.0, 3.0, 4, 3
    >>> with jax.enable_x64(True):
    ...     got = float(beta_negative_binomial_log_prob(a, b, float(n), float(k)))
    >>> rising = lambda x, j: math.prod(x + i for i in range(j))  # Γ(x+j)/Γ(x)
    >>> ref = math.log(math.comb(n + k - 1, k) * rising(a, k) * rising(b, n) / rising(a + b, n + k))
    >>> abs(got - ref) < 1e-14
    True
    """
    a, b = jnp.asarray(concentration1), jnp.asarray(concentration0)
    n, k = jnp.asarray(n), jnp.asarray(value)
    return (
        lgamma_ratio(n, k)
        - gammaln(k + 1.0)
        + lgamma_ratio(a, k)
        + lgamma_ratio(b, n)
        - lgamma_ratio(a + b, n + k)
    )


def beta_log_prob(concentration1, concentration0, value):
    """log p(x) of the beta distribution, α = concentration1, β = concentration0.

    Notes
    -----
    .. math:: \\log p(x) = (\\alpha-1)\\log x + (\\beta-1)\\,\\mathrm{log1p}(-x) - \\log B(\\alpha, \\beta),

    with :func:`log_beta`; at x = 0 or 1 the ``0·log 0 = 0`` convention (``xlogy``) gives
    NumPyro's boundary values. Where the concentrations are large the three terms are of
    order α + β and the density of order log(α + β): ``eps·(α+β)`` is lost in any form of
    this parametrization (NumPyro's Dirichlet form loses ``eps·(α+β)·log(α+β)``).

    Examples
    --------
    >>> import math, jax
    >>> with jax.enable_x64(True):
    ...     got = float(beta_log_prob(2.0, 3.0, 0.25))
    >>> ref = math.log(12 * 0.25 * 0.75**2)  # 1 / B(2, 3) = 12
    >>> abs(got - ref) < 1e-15
    True
    """
    a, b, x = jnp.asarray(concentration1), jnp.asarray(concentration0), jnp.asarray(value)
    return xlogy(a - 1.0, x) + xlog1py(b - 1.0, -x) - log_beta(a, b)
