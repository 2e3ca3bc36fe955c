"""One process of ``bench_distributed.py``: ``NPROC PID PORT N P`` (NPROC 1: no runtime).

Generates its own rows (blocks of 10⁵ rows, one seed per block, so the union over processes
is the one-process dataset), fits a logistic regression twice (first call, then warm) and
prints one JSON line: times, peak resident memory, iterations, estimates' checksum.
"""

import json
import resource
import sys
import time

import jax

nproc, pid, port, n, p = (int(a) for a in sys.argv[1:6])
if nproc > 1:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=nproc, process_id=pid)

import numpy as np  # noqa: E402
import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
from jax.sharding import Mesh, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import mleppl  # noqa: E402

BLOCK = 100_000


def logit(X, y=None):
    b = numpyro.sample("b", dist.Normal(0, 5).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("n", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=X @ b), obs=y)


beta = np.random.default_rng(12345).normal(0, 0.05, p)
blocks = np.array_split(np.arange(n // BLOCK), nproc)[pid]
X = np.empty((blocks.size * BLOCK, p))
y = np.empty(blocks.size * BLOCK)
for i, blk in enumerate(blocks):
    rng = np.random.default_rng(int(blk))
    rows = slice(i * BLOCK, (i + 1) * BLOCK)
    X[rows, 0] = 1.0
    X[rows, 1:] = rng.normal(size=(BLOCK, p - 1))
    y[rows] = rng.uniform(size=BLOCK) < 1 / (1 + np.exp(-X[rows] @ beta))
mesh = Mesh(np.array(jax.devices()), ("obs",))
with jax.enable_x64(True):
    if nproc > 1:
        Xd = jax.make_array_from_process_local_data(NamedSharding(mesh, P("obs", None)), X)
        yd = jax.make_array_from_process_local_data(NamedSharding(mesh, P("obs")), y)
    else:
        Xd, yd = jax.device_put(X), jax.device_put(y)
del X, y
t0 = time.perf_counter()
res = mleppl.fit_mle(logit, Xd, y=yd)
first = time.perf_counter() - t0
t0 = time.perf_counter()
res = mleppl.fit_mle(logit, Xd, y=yd)
warm = time.perf_counter() - t0
print(
    json.dumps(
        {
            "pid": pid,
            "first_s": first,
            "warm_s": warm,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "converged": bool(res.converged),
            "b": np.asarray(res.params["b"]).tolist(),
            "se": np.asarray(res.se["b"]).tolist(),
        }
    )
)
