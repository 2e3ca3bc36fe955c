"""One latency case in a fresh process: the first call (compilation included, persistent cache
off), then the warm call, and where the first call's time went, per compiled program.

Usage: python benchmarks/_latency_worker.py CASE DATA_DIR

Prints one JSON object: ``first`` and ``warm`` seconds, and ``programs``: for each compiled
program (named by mleppl's ``cache.jit(name=...)``, or JAX's name of an eager operation) its
tracing, lowering (jaxpr → MLIR) and XLA compilation seconds. Tracing of a program nested in
another (the joint log-density jitted inside the Laplace fit) is inside its parent's tracing
time and is reported apart, not added.
"""

from __future__ import annotations

import collections
import json
import os
import re
import sys
import time

T_START = time.perf_counter()
import jax  # noqa: E402
import numpy as np  # noqa: E402

PHASES = {
    "/jax/core/compile/jaxpr_trace_duration": "trace",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
    "/jax/core/compile/backend_compile_duration": "compile",
}
NESTED = {"mleppl_joint"}  # traced inside another program's tracing
_events: list = []


def _listen(event, duration, **kw):
    if event in PHASES:
        _events.append((PHASES[event], str(kw.get("fun_name", "?")), float(duration)))


jax.monitoring.register_event_duration_secs_listener(_listen)

import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402

import mleppl  # noqa: E402

T_IMPORT = time.perf_counter() - T_START


# ------------------------------------------------------------------ models
def logistic(X, y=None):
    beta = numpyro.sample("beta", dist.Normal(0, 10).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=X @ beta), obs=y)


def glmm(x, g, n_groups, y=None):
    b = numpyro.sample("b", dist.Normal(0, 10).expand([2]).to_event(1))
    su = numpyro.sample("sigma_u", dist.HalfNormal(2))
    with numpyro.plate("group", n_groups):
        u = numpyro.sample("u", dist.Normal(0, su))
    with numpyro.plate("obs", x.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=b[0] + b[1] * x + u[g]), obs=y)


def slope_lmm(x, g, n_groups, y=None):
    import jax.numpy as jnp

    b = numpyro.sample("b", dist.Normal(0, 100).expand([2]).to_event(1))
    tau = numpyro.sample("tau", dist.HalfNormal(50).expand([2]).to_event(1))
    corr = numpyro.sample("L", dist.LKJCholesky(2))
    sigma = numpyro.sample("sigma", dist.HalfNormal(50))
    with numpyro.plate("group", n_groups):
        u = numpyro.sample("u", dist.MultivariateNormal(jnp.zeros(2), scale_tril=tau[:, None] * corr))
    with numpyro.plate("obs", x.shape[0]):
        numpyro.sample("y", dist.Normal(b[0] + u[g, 0] + (b[1] + u[g, 1]) * x, sigma), obs=y)


def cbpp_model(period, herd, size, n_herds, y=None):
    b = numpyro.sample("b", dist.Normal(0, 10).expand([4]).to_event(1))
    su = numpyro.sample("sigma_u", dist.HalfNormal(2))
    with numpyro.plate("herd", n_herds):
        u = numpyro.sample("u", dist.Normal(0, su))
    with numpyro.plate("obs", period.shape[0]):
        numpyro.sample("y", dist.Binomial(size, logits=b[period] + u[herd]), obs=y)


# ------------------------------------------------------------------ data
def _npz(data_dir, name):
    return dict(np.load(os.path.join(data_dir, name + ".npz")))


def _cbpp(data_dir):
    d = np.genfromtxt(os.path.join(data_dir, "cbpp.csv"), delimiter=",", names=True)
    herd = d["herd"].astype(np.int64) - 1
    period = d["period"].astype(np.int64) - 1
    return (period, herd, d["size"].astype(np.int64), int(herd.max()) + 1), d["incidence"].astype(np.float64)


def _sleep(data_dir):
    d = np.genfromtxt(os.path.join(data_dir, "sleepstudy.csv"), delimiter=",", names=True)
    g = d["Subject"].astype(np.int64) - 1
    return (d["Days"].astype(np.float64), g, int(g.max()) + 1), d["Reaction"].astype(np.float64)


def case(name: str, data_dir: str):
    """``(first, again)``: the call timed cold and the call timed warm (None: same as first)."""
    if name == "glm_rows":
        d = _npz(data_dir, "glm")
        mleppl.fit_mle(logistic, d["X"], y=d["y"])
        return (lambda: mleppl.fit_mle(logistic, d["X"][:95_000], y=d["y"][:95_000])), None
    if name == "rows":
        d = _npz(data_dir, "glmm")
        mleppl.fit_mle(glmm, d["x"], d["g"], int(d["G"]), y=d["y"], random=["u"])
        m = 9_800  # in the bucket of 10,000 rows (9,744 < m ≤ 11,592)
        return (
            lambda: mleppl.fit_mle(glmm, d["x"][:m], d["g"][:m], int(d["G"]), y=d["y"][:m], random=["u"])
        ), None
    if name in ("glm", "small"):
        d = _npz(data_dir, "glm" if name == "glm" else "small")
        return (lambda: mleppl.fit_mle(logistic, d["X"], y=d["y"])), None
    if name in ("glmm", "resize", "ppc"):
        d = _npz(data_dir, "glmm")
        fit = lambda: mleppl.fit_mle(glmm, d["x"], d["g"], int(d["G"]), y=d["y"], random=["u"])  # noqa: E731
        if name == "glmm":
            return fit, None
        if name == "resize":
            d2 = _npz(data_dir, "glmm_resize")
            fit()
            return (
                lambda: mleppl.fit_mle(glmm, d2["x"], d2["g"], int(d2["G"]), y=d2["y"], random=["u"])
            ), None
        res = fit()
        return (lambda: (res.to_datatree(), mleppl.plot_ppc(res))), None
    if name == "slope":
        d = _npz(data_dir, "slope")
        return (lambda: mleppl.fit_mle(slope_lmm, d["x"], d["g"], int(d["G"]), y=d["y"], random=["u"])), None
    if name == "sleep":
        args, y = _sleep(data_dir)
        return (lambda: mleppl.fit_mle(slope_lmm, *args, y=y, random=["u"])), None
    if name in ("cbpp", "agq25", "boot_glmm"):
        args, y = _cbpp(data_dir)
        nagq = 25 if name == "agq25" else 1
        fit = lambda: mleppl.fit_mle(cbpp_model, *args, y=y, random=["u"], nagq=nagq)  # noqa: E731
        if name != "boot_glmm":
            return fit, None
        res = fit()
        return (lambda: mleppl.bootstrap(res, 200, kind="parametric")), None
    if name == "boot_glm":
        d = _npz(data_dir, "small")
        res = mleppl.fit_mle(logistic, d["X"], y=d["y"])
        return (lambda: mleppl.bootstrap(res, 200)), None
    raise SystemExit(f"unknown case {name!r}")


def main() -> None:
    name, data_dir = sys.argv[1], sys.argv[2]
    first_call, _ = case(name, data_dir)
    before = len(_events)
    t0 = time.perf_counter()
    first_call()
    first = time.perf_counter() - t0
    mine = _events[before:]
    warm = []
    for _ in range(20 if name == "small" else 3):
        t0 = time.perf_counter()
        first_call()
        warm.append(time.perf_counter() - t0)
    programs = collections.defaultdict(lambda: {"trace": 0.0, "lower": 0.0, "compile": 0.0, "n": 0})
    for phase, fun, dur in mine:
        fun = re.sub(r"^jit[_(]", "", fun).rstrip(")")  # lowering says jit_f, compilation jit(f)
        key = fun if fun.startswith("mleppl") or fun in NESTED else "eager"
        programs[key][phase] += dur
        programs[key]["n"] += phase == "compile"
    print(
        json.dumps(
            {
                "case": name,
                "import": T_IMPORT,
                "first": first,
                "warm": float(np.min(warm)),
                "programs": dict(programs),
                "jax": jax.__version__,
                "numpyro": numpyro.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
