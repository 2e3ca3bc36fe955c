"""Data placed on several devices stay there: fit_mle, with_cov and fit_many on 4 virtual CPU devices.

JAX reads ``XLA_FLAGS`` once, when it initialises, so the checks run in a fresh Python
process with ``--xla_force_host_platform_device_count=4``; that process compares the
sharded fits with single-device fits of the same data and reports back as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import json, warnings
import numpy as np, jax, jax.numpy as jnp, numpyro, numpyro.distributions as dist
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import mleppl
from mleppl.fitting.program import fit_program

assert len(jax.devices()) == 4, jax.devices()
mesh = Mesh(np.array(jax.devices()), ("obs",))

def nb2(X, y=None):
    b = numpyro.sample("b", dist.Normal(0, 5).expand([X.shape[1]]).to_event(1))
    phi = numpyro.sample("phi", dist.Exponential(1.0))
    with numpyro.plate("n", X.shape[0]):
        numpyro.sample("y", dist.NegativeBinomial2(jnp.exp(X @ b), phi), obs=y)

rng = np.random.default_rng(0)
n = 4000
X = np.column_stack([np.ones(n), rng.normal(size=n), rng.binomial(1, 0.5, n)])
mu = np.exp(X @ np.array([1.0, 0.4, -0.3]))
y = rng.negative_binomial(2.0, 2.0 / (2.0 + mu)).astype(float)
groups = np.repeat(np.arange(40), n // 40)
with jax.enable_x64(True):
    Xs = jax.device_put(X, NamedSharding(mesh, P("obs", None)))
    ys = jax.device_put(y, NamedSharding(mesh, P("obs")))

def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))

out = {}
one = mleppl.fit_mle(nb2, X, y=y)
sh = mleppl.fit_mle(nb2, Xs, y=ys)
out["converged"] = bool(one.converged and sh.converged)
out["estimates"] = rel(sh.estimate, one.estimate)
out["se"] = rel(sh.bse, one.bse)
out["loglik"] = rel(sh.loglik, one.loglik)
out["held_devices"] = [len(x.sharding.device_set) for x in sh.problem.data]
out["held_same_sharding"] = [
    x.sharding == s.sharding for x, s in zip(sh.problem.data, (Xs, ys))
]
out["single_device_fit_devices"] = [len(x.sharding.device_set) for x in one.problem.data]
# the per-observation work runs where the data are: XLA's program sums partial results across devices
with jax.enable_x64(True):
    prog = fit_program(sh.problem, "newton", None, 1e-12)
    text = prog.lower(sh.problem.data, jnp.zeros(4), jnp.asarray(float(n))).compile().as_text()
out["all_reduce"] = "all-reduce" in text
for kind in ("hc0", "opg"):
    out[kind] = rel(sh.with_cov(kind).bse, one.with_cov(kind).bse)
out["cluster"] = rel(sh.with_cov("cluster", groups=groups).bse, one.with_cov("cluster", groups=groups).bse)

# fit_many: datasets sharded along the batch axis, the design replicated
B, m = 16, 100
Xm = X[:m]
Y = rng.negative_binomial(2.0, 2.0 / (2.0 + mu[:m]), size=(B, m)).astype(float)
with jax.enable_x64(True):
    Ys = jax.device_put(Y, NamedSharding(mesh, P("obs", None)))
many1 = mleppl.fit_many(nb2, Xm, y=Y)
many_s = mleppl.fit_many(nb2, Xm, y=Ys, chunk_size=8)
out["many_converged"] = int(many_s.converged.sum())
out["many_estimates"] = rel(many_s.estimate, many1.estimate)
out["many_se"] = rel(many_s.bse, many1.bse)
out["many_loglik"] = rel(many_s.loglik, many1.loglik)
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def report():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["JAX_PLATFORMS"] = "cpu"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]
    line = [s for s in done.stdout.splitlines() if s.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


def test_sharded_fit_equals_the_single_device_fit(report):
    assert report["converged"]
    assert report["estimates"] < 1e-10, report
    assert report["se"] < 1e-10, report
    assert report["loglik"] < 1e-12, report


def test_the_fit_keeps_the_data_where_the_user_put_them(report):
    assert report["held_devices"] == [4, 4]
    assert report["held_same_sharding"] == [True, True]
    assert report["single_device_fit_devices"] == [1, 1]
    assert report["all_reduce"], "the compiled fit should combine per-device partial sums"


def test_sandwich_covariances_on_sharded_data(report):
    for kind in ("hc0", "opg", "cluster"):
        assert report[kind] < 1e-10, (kind, report)


def test_fit_many_with_datasets_sharded_along_the_batch_axis(report):
    assert report["many_converged"] == 16
    assert report["many_estimates"] < 1e-10, report
    assert report["many_se"] < 1e-8, report
    assert report["many_loglik"] < 1e-12, report
