"""SVI benchmark: mleppl's ``method="svi"`` vs a hand-written NumPyro SVI loop vs the exact fit.

Logistic regression, n = 20,000 rows, 5 parameters, batches of 1,000
(``plate(..., subsample_size=1000)``). Three fits:

* ``fit_mle(model_exact)`` — the exact MLE (Newton, full plate);
* ``fit_mle(model_batched)`` — ``method="svi"`` chosen automatically: SVI until the
  full-data Newton decrement is ≤ 0.5 SE, then exact Newton steps, SEs from the full data;
* NumPyro's own loop written by hand: ``SVI(model_flat, AutoDelta, optax Adam with the same
  warmup–cosine schedule, Trace_ELBO)`` on the same minibatches size, run for the same number
  of steps as mleppl's stochastic phase and for mleppl's full budget (5,000 steps); no SEs.

Reported: seconds per fit after compilation (median of ``ROUNDS``), the first call
(compilation included) and max |Δestimate| / SE against the exact fit. Everything runs in
one process, one fit at a time (JAX only; no NumPy-BLAS peer to disturb).

Run: ``python benchmarks/bench_svi.py`` (prints a Markdown table).
"""

from __future__ import annotations

import os
import platform
import statistics
import time

os.environ.setdefault("JAX_ENABLE_X64", "1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
import optax  # noqa: E402
from numpyro.infer import SVI, Trace_ELBO  # noqa: E402
from numpyro.infer.autoguide import AutoDelta  # noqa: E402
from numpyro.infer.initialization import init_to_value  # noqa: E402
from numpyro.optim import optax_to_numpyro  # noqa: E402

from mleppl import fit_mle  # noqa: E402
from mleppl.fitting.svi import END_FACTOR, SVI_DEFAULTS  # noqa: E402

N, P, B, ROUNDS = 20_000, 4, 1000, 3
rng = np.random.default_rng(0)
X = rng.normal(size=(N, P))
Y = (rng.random(N) < 1 / (1 + np.exp(-(0.3 + X @ np.array([0.5, -1.0, 0.25, 0.0]))))).astype(float)


def model_batched(X, y=None):
    a = numpyro.sample("a", dist.Normal(0, 5))
    b = numpyro.sample("b", dist.Normal(0, 5).expand([X.shape[1]]))
    with numpyro.plate("n", X.shape[0], subsample_size=B) as idx:
        numpyro.sample("y", dist.Bernoulli(logits=a + X[idx] @ b), obs=y[idx])


def model_exact(X, y=None):
    a = numpyro.sample("a", dist.Normal(0, 5))
    b = numpyro.sample("b", dist.Normal(0, 5).expand([X.shape[1]]))
    with numpyro.plate("n", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=a + X @ b), obs=y)


def model_flat(X, y=None):
    """What a user writes for SVI-as-MLE by hand: flat priors, the same minibatch plate."""
    a = numpyro.sample("a", dist.ImproperUniform(dist.constraints.real, (), ()))
    b = numpyro.sample("b", dist.ImproperUniform(dist.constraints.real, (), (X.shape[1],)))
    with numpyro.plate("n", X.shape[0], subsample_size=B) as idx:
        numpyro.sample("y", dist.Bernoulli(logits=a + X[idx] @ b), obs=y[idx])


def hand_svi(steps: int):
    """NumPyro's SVI loop by hand: same optimizer and schedule, ``steps`` steps, one jit'd scan."""
    total = SVI_DEFAULTS["num_steps"]
    lr = SVI_DEFAULTS["learning_rate"]
    sched = optax.warmup_cosine_decay_schedule(0.0, lr, total // 20, total, lr * END_FACTOR)
    init = init_to_value(values={"a": 0.0, "b": jnp.zeros(P)})
    guide = AutoDelta(model_flat, init_loc_fn=init)
    svi = SVI(model_flat, guide, optax_to_numpyro(optax.adam(sched)), Trace_ELBO())
    Xj, Yj = jnp.asarray(X), jnp.asarray(Y)

    @jax.jit
    def run(key):
        state = svi.init(key, Xj, Yj)
        state, _ = jax.lax.scan(lambda s, _: svi.update(s, Xj, Yj), state, None, length=steps)
        return svi.get_params(state)

    def fit():
        params = jax.device_get(run(jax.random.PRNGKey(1)))
        return np.concatenate([np.ravel(params["a_auto_loc"]), np.ravel(params["b_auto_loc"])])

    return fit


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, first, statistics.median(times)


def main() -> None:
    t_start = time.perf_counter()
    exact, ex_first, ex_t = timed(lambda: fit_mle(model_exact, X, y=Y))
    svi, svi_first, svi_t = timed(lambda: fit_mle(model_batched, X, y=Y))
    se = exact.bse
    svi_steps = svi.svi["steps"]
    rows = [
        ("mleppl `fit_mle`, exact (Newton, full plate)", ex_first, ex_t, 0.0, "yes"),
        (
            f'mleppl `method="svi"`: {svi_steps} SVI steps (stopped at λ = {svi.svi["decrement_svi"]:.2f} SE) '
            f"+ {svi.svi['newton_steps']} full-data Newton steps",
            svi_first,
            svi_t,
            float(np.max(np.abs(svi.estimate - exact.estimate) / se)),
            "yes (full data)",
        ),
    ]
    svi_only = float(np.max(np.abs(_theta(svi.svi["z_svi"]) - exact.estimate) / se))
    rows.append(
        (f"  … its SVI estimate before the Newton finish ({svi_steps} steps)", None, None, svi_only, "—")
    )
    for steps in (svi_steps, SVI_DEFAULTS["num_steps"]):
        est, first, t = timed(hand_svi(steps))
        rows.append(
            (
                f"NumPyro SVI loop by hand (AutoDelta, same Adam schedule), {steps} steps",
                first,
                t,
                float(np.max(np.abs(est - exact.estimate) / se)),
                "no",
            )
        )
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; Python "
        f"{platform.python_version()}, jax {jax.__version__}, numpyro {numpyro.__version__}, optax "
        f"{optax.__version__}. Logistic regression n = {N:,}, {P + 1} parameters, batches of {B:,}. "
        f"Median of {ROUNDS} calls after the first; first call includes compilation. "
        f"Wall time of the run: {time.perf_counter() - t_start:.0f} s.\n"
    )
    print("| fit | first call (s) | per fit (s) | max \\|Δestimate\\| / SE vs exact | standard errors |")
    print("|---|---:|---:|---:|---|")
    for name, first, t, err, ses in rows:
        f1 = "" if first is None else f"{first:.2f}"
        f2 = "" if t is None else f"{t:.3f}"
        print(f"| {name} | {f1} | {f2} | {err:.2g} | {ses} |")
    print(f"\nSE agreement (svi vs exact): max relative difference {np.max(np.abs(svi.bse / se - 1)):.1e}")


def _theta(z):
    return np.asarray(z)  # every site is real-valued here: z is θ


if __name__ == "__main__":
    main()
