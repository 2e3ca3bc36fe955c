"""Compile cost of the high-order derivatives of NumPyro log-densities against mleppl's kernels.

For each distribution, f(θ) = Σ log p(y_i | θ) over 50 observations, θ two parameters
(on unconstrained scales), and the lowering + XLA compile time and the peak memory of

- order 2: ``jax.hessian(f)`` (what a plain fit needs), and
- order 4: ``jax.jacfwd(jax.jacfwd(jax.hessian(f)))`` (what the Laplace fit of a model with
  random effects differentiates: the inner mode's Hessian, differentiated twice more),

once with NumPyro's ``log_prob`` and once with the distribution as the likelihood sees it
(:func:`mleppl.adapters.numpyro.exact_log_density`, identical where nothing is swapped).
Each measurement runs in its own process (peak RSS is the process's), under a time limit and
an address-space limit, so a blow-up is reported instead of taking the machine down.

With ``--glmm``: a beta-binomial GLMM's Laplace fit (first call), the same two ways.

Usage: python benchmarks/bench_kernels_compile.py [--cases A,B] [--orders 2,4] [--timeout S] [--glmm]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

LIMIT_BYTES = 8_000_000 * 1024  # `ulimit -v 8000000`
# no persistent compilation cache (importing mleppl turns JAX's on): every compile is a first one
WORKER_ENV = {**os.environ, "MLEPPL_COMPILATION_CACHE": "0", "JAX_ENABLE_COMPILATION_CACHE": "false"}


def _cases():
    """name -> (build(theta) -> distribution, data)."""
    import jax.numpy as jnp
    import numpy as np
    import numpyro.distributions as dist

    rng = np.random.default_rng(0)
    n_obs = 50
    sig = lambda t: 1.0 / (1.0 + jnp.exp(-t))  # noqa: E731
    n_trials = 10.0
    return {
        # θ = (logit mean, log concentration): α = κμ, β = κ(1 − μ)
        "BetaBinomial": (
            lambda t: dist.BetaBinomial(jnp.exp(t[1]) * sig(t[0]), jnp.exp(t[1]) * (1 - sig(t[0])), n_trials),
            rng.binomial(10, rng.beta(2.0, 3.0, n_obs)).astype(float),
        ),
        "BetaNegativeBinomial": (
            lambda t: dist.BetaNegativeBinomial(jnp.exp(t[0]), jnp.exp(t[1]), 3.0),
            rng.negative_binomial(3, rng.beta(4.0, 2.0, n_obs)).astype(float),
        ),
        "Beta": (
            lambda t: dist.Beta(jnp.exp(t[0]), jnp.exp(t[1])),
            np.clip(rng.beta(2.0, 3.0, n_obs), 1e-6, 1 - 1e-6),
        ),
        "BetaProportion": (
            lambda t: dist.BetaProportion(sig(t[0]), jnp.exp(t[1])),
            np.clip(rng.beta(2.0, 3.0, n_obs), 1e-6, 1 - 1e-6),
        ),
        "NegativeBinomial2": (
            lambda t: dist.NegativeBinomial2(jnp.exp(t[0]), jnp.exp(t[1])),
            rng.negative_binomial(2, 0.4, n_obs).astype(float),
        ),
        "NegativeBinomialLogits": (
            lambda t: dist.NegativeBinomialLogits(jnp.exp(t[1]), t[0]),
            rng.negative_binomial(2, 0.4, n_obs).astype(float),
        ),
        "StudentT": (lambda t: dist.StudentT(jnp.exp(t[1]), t[0], 1.0), rng.standard_t(4.0, n_obs)),
        "Gamma": (lambda t: dist.Gamma(jnp.exp(t[0]), jnp.exp(t[1])), rng.gamma(2.0, 1.0, n_obs)),
        "DirichletMultinomial": (
            lambda t: dist.DirichletMultinomial(jnp.exp(jnp.stack([t[0], t[1], 0.0 * t[0]])), 10),
            rng.multinomial(10, [0.2, 0.3, 0.5], n_obs).astype(float),
        ),
        "VonMises": (lambda t: dist.VonMises(t[0], jnp.exp(t[1])), rng.vonmises(0.3, 2.0, n_obs)),
    }


def measure(case: str, variant: str, order: int) -> dict:
    """Lower and compile the order-``order`` derivative of Σ log p once (this process)."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    from mleppl.adapters.numpyro import exact_log_density

    build, y = _cases()[case]
    y = jnp.asarray(y)

    def f(t):
        d = build(t)
        if variant == "kernel":
            d = exact_log_density(d)
        return jnp.sum(d.log_prob(y))

    g = jax.hessian(f) if order == 2 else jax.jacfwd(jax.jacfwd(jax.hessian(f)))
    theta = jnp.array([0.3, 1.1])
    t0 = time.perf_counter()
    lowered = jax.jit(g).lower(theta)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    out = compiled(theta).block_until_ready()
    t3 = time.perf_counter()
    for _ in range(20):
        compiled(theta).block_until_ready()
    run_us = (time.perf_counter() - t3) / 20 * 1e6
    return {
        "lower_s": t1 - t0,
        "compile_s": t2 - t1,
        "first_call_s": t3 - t2,
        "run_us": run_us,
        "hlo_chars": len(lowered.as_text()),
        "finite": bool(jnp.all(jnp.isfinite(out))),
        "self_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def glmm_fit(variant: str) -> dict:
    """A beta-binomial GLMM (10 groups × 6 rows, random intercept) fitted by Laplace, with
    NumPyro's log-density (``numpyro``: the kernels table reduced to the Gamma–Poisson one, as
    before the beta kernels) or with the kernels; first call, compilation included."""
    import jax.numpy as jnp
    import numpy as np
    import numpyro
    import numpyro.distributions as dist

    import mleppl
    import mleppl.adapters.numpyro.kernels as K

    if variant == "numpyro":
        table = {dist.GammaPoisson: K._kernels()[dist.GammaPoisson]}
        K._kernels = lambda: table
    G, M, N = 10, 6, 8
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(G), M)
    x = rng.normal(size=G * M)
    u = rng.normal(0, 0.7, G)
    mu = 1 / (1 + np.exp(-(-0.4 + 0.8 * x + u[g])))
    y = rng.binomial(N, rng.beta(mu * 6.0, (1 - mu) * 6.0)).astype(float)

    def model(x, g, n, y=None):
        b = numpyro.sample("b", dist.Normal(0, 10).expand([2]).to_event(1))
        phi = numpyro.sample("phi", dist.HalfNormal(10.0))
        s = numpyro.sample("sigma_u", dist.HalfNormal(2.0))
        with numpyro.plate("group", G):
            uu = numpyro.sample("u", dist.Normal(0, s))
        m = 1 / (1 + jnp.exp(-(b[0] + b[1] * x + uu[g])))
        with numpyro.plate("obs", x.shape[0]):
            numpyro.sample("y", dist.BetaBinomial(m * phi, (1 - m) * phi, n), obs=y)

    t0 = time.perf_counter()
    res = mleppl.fit_mle(model, x, g, np.full(G * M, float(N)), y=y, random=["u"])
    return {
        "fit_s": time.perf_counter() - t0,
        "loglik": float(res.loglik),
        "self_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _limit():
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))


def _peak_mb(pid: int) -> float | None:
    """The process's peak resident memory (VmHWM), in MB, while it is alive."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_one(worker_args: list[str], timeout: float) -> dict:
    """One measurement in a fresh process; its peak RSS is polled from /proc (so a timeout
    still reports how far it got)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, __file__, *worker_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_limit,
        env=WORKER_ENV,
    )
    peak = 0.0
    while proc.poll() is None and time.perf_counter() - t0 < timeout:
        peak = max(peak, _peak_mb(proc.pid) or 0.0)
        time.sleep(0.2)
    if proc.poll() is None:
        peak = max(peak, _peak_mb(proc.pid) or 0.0)
        proc.kill()
        proc.communicate()
        return {"status": f"timeout>{timeout:.0f}s", "wall_s": time.perf_counter() - t0, "peak_rss_mb": peak}
    stdout, stderr = proc.communicate()
    rec = {"wall_s": time.perf_counter() - t0, "peak_rss_mb": peak or None}
    if proc.returncode != 0:
        lines = [
            ln
            for ln in (stderr or "").strip().splitlines()
            if ln and not ln.startswith((" ", "-", "For simplicity"))
        ]
        tail = lines[-1:] or ["?"]
        rec["status"] = f"failed rc={proc.returncode}: {tail[0][:120]}"
        return rec
    rec.update(json.loads(stdout.strip().splitlines()[-1]))
    rec["peak_rss_mb"] = max(peak, rec.pop("self_peak_mb"))
    rec["status"] = "ok"
    return rec


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        case, variant, order = sys.argv[2], sys.argv[3], int(sys.argv[4])
        print(json.dumps(measure(case, variant, order)))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--worker-glmm":
        print(json.dumps(glmm_fit(sys.argv[2])))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=",".join(_cases()))
    ap.add_argument("--orders", default="2,4")
    ap.add_argument("--variants", default="numpyro,kernel")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--glmm", action="store_true", help="the beta-binomial GLMM fit instead (120 s limit)")
    args = ap.parse_args()
    if args.glmm:
        for variant in args.variants.split(","):
            r = run_one(["--worker-glmm", variant], min(args.timeout, 120.0))
            print(
                f"beta-binomial GLMM {variant:8s} fit {r.get('fit_s', float('nan')):7.1f} s  "
                f"peak {r.get('peak_rss_mb') or float('nan'):6.0f} MB  loglik {r.get('loglik', float('nan')):.6f}  "
                f"(process {r['wall_s']:.0f} s) {r['status']}",
                flush=True,
            )
        return
    print(
        f"{'case':24s} {'variant':8s} ord {'lower s':>8s} {'compile s':>9s} {'peak MB':>8s} {'run µs':>9s}  status"
    )
    for case in args.cases.split(","):
        for order in map(int, args.orders.split(",")):
            for variant in args.variants.split(","):
                r = run_one(["--worker", case, variant, str(order)], args.timeout)
                peak = f"{r['peak_rss_mb']:8.0f}" if r.get("peak_rss_mb") else f"{'?':>8s}"
                print(
                    f"{case:24s} {variant:8s} {order:3d} {r.get('lower_s', float('nan')):8.2f} "
                    f"{r.get('compile_s', float('nan')):9.2f} {peak} {r.get('run_us', float('nan')):9.1f}  "
                    f"{r['status']}{'' if r.get('finite', True) else ' (non-finite)'}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
