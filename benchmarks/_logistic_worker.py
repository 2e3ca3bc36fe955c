"""One tool, one process: fit logistic regression on a saved dataset and report JSON.

Usage: python benchmarks/_logistic_worker.py TOOL DATA.npz REPEATS TARGET_LOGLIK

Each tool runs in a fresh process so that thread pools do not contend (NumPy
timings inside a process that has run JAX are distorted) and so that its peak
resident memory (ru_maxrss) is its own. The first call is timed separately
from the repeat calls (for JAX: compilation included).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

import numpy as np


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_statsmodels(X, y, repeats, _target):
    """statsmodels at its fastest setting here: one BLAS thread (on this 2-core machine its
    default multi-threaded BLAS was slower: 6.4 vs 3.6 ms at 10⁴ × 10, issue 14)."""
    import statsmodels.api as sm
    from threadpoolctl import threadpool_limits

    def fit():
        with threadpool_limits(1):
            r = sm.Logit(y, X).fit(method="newton", disp=0)
        return r.params, r.bse, r.llf

    return fit


def run_sklearn(X, y, repeats, _target):
    from sklearn.linear_model import LogisticRegression

    def fit():
        m = LogisticRegression(penalty=None, solver="lbfgs", fit_intercept=False, tol=1e-8, max_iter=10000)
        m.fit(X, y)
        b = m.coef_.ravel()
        eta = X @ b
        llf = float(np.sum(y * eta - np.logaddexp(0, eta)))
        return b, None, llf

    return fit


def _model():
    import numpyro
    import numpyro.distributions as dist

    def logit(X, y=None):
        beta = numpyro.sample("beta", dist.Normal(0, 10).expand([X.shape[1]]).to_event(1))
        with numpyro.plate("obs", X.shape[0]):
            numpyro.sample("y", dist.Bernoulli(logits=X @ beta), obs=y)

    return logit


def run_mleppl(X, y, repeats, _target):
    from mleppl import fit_mle

    model = _model()

    def fit():
        r = fit_mle(model, X, y=y)
        return np.asarray(r.params["beta"]), np.asarray(r.se["beta"]), r.loglik

    return fit


def run_svi(X, y, repeats, target, lr=0.01, chunk=50):
    """NumPyro SVI + AutoDelta + Adam on the prior-free model until loglik ≥ target − 0.01.

    Timed after compilation (SVI's compile is not charged to it), checking every
    ``chunk`` steps.
    """
    import jax
    import numpyro
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoDelta
    from numpyro.infer.initialization import init_to_value

    jax.config.update("jax_enable_x64", True)
    from mleppl import negloglik

    budget_s = float(os.environ.get("MLEPPL_SVI_BUDGET", "120"))

    nll = negloglik(_model(), X, y=y)
    model = nll.prior_free_model
    p = X.shape[1]

    def fit():
        guide = AutoDelta(model, init_loc_fn=init_to_value(values={"beta": np.zeros(p)}))
        svi = SVI(model, guide, numpyro.optim.Adam(lr), Trace_ELBO())
        state = svi.init(jax.random.PRNGKey(0), *nll.args, **nll.kwargs)

        def steps(state, _):
            state, loss = svi.update(state, *nll.args, **nll.kwargs)
            return state, loss

        run_chunk = jax.jit(lambda s: jax.lax.scan(steps, s, None, length=chunk))
        jax.block_until_ready(run_chunk(state))  # compile once, outside the timing
        t0, n_steps, ll = time.perf_counter(), 0, -np.inf
        while time.perf_counter() - t0 < budget_s:
            state, losses = run_chunk(state)
            n_steps += chunk
            ll = -float(losses[-1])
            if ll >= target - 0.01:
                break
        b = np.asarray(svi.get_params(state)["beta_auto_loc"])
        return b, None, ll, n_steps, ll >= target - 0.01

    return fit


TOOLS = {"statsmodels": run_statsmodels, "sklearn": run_sklearn, "mleppl": run_mleppl, "svi": run_svi}


def main() -> None:
    tool, path, repeats, target = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    d = np.load(path)
    X, y = d["X"], d["y"]
    rss_data = _rss_mb()
    fit = TOOLS[tool](X, y, repeats, target)
    t0 = time.perf_counter()
    out = fit()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats if tool != "svi" else 0):
        t0 = time.perf_counter()
        out = fit()
        times.append(time.perf_counter() - t0)
    res = {
        "tool": tool,
        "first_s": first,
        "repeat_s": float(np.median(times)) if times else None,
        "params": np.asarray(out[0]).tolist(),
        "bse": None if out[1] is None else np.asarray(out[1]).tolist(),
        "loglik": out[2],
        "peak_rss_mb": _rss_mb(),
        "data_rss_mb": rss_data,
    }
    if tool == "svi":
        res["svi_steps"], res["svi_reached"] = out[3], bool(out[4])
    print(json.dumps(res))


if __name__ == "__main__":
    main()
