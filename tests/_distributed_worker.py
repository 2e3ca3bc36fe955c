"""One process of the two-process check in ``test_distributed.py`` (run as a script).

``python _distributed_worker.py PROCESS_ID PORT OUT_DIR``: joins a two-process JAX runtime on
localhost (gloo collectives on CPU), builds global arrays holding this process's half of the
rows, fits, and saves what it got to ``OUT_DIR/PROCESS_ID.npz``.
"""

import sys

import jax

pid, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2, process_id=pid)

import numpy as np  # noqa: E402
from _distributed_models import data, glmm, logit, nb2  # noqa: E402
from jax.sharding import Mesh, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import mleppl  # noqa: E402

mesh = Mesh(np.array(jax.devices()), ("obs",))


def mine(a, *spec):
    """The global array whose rows (or batch entries) this process holds half of."""
    k = a.shape[0] // 2
    with jax.enable_x64(True):
        return jax.make_array_from_process_local_data(
            NamedSharding(mesh, P("obs", *spec)), a[pid * k : (pid + 1) * k]
        )


d = data()
res = mleppl.fit_mle(logit, mine(d["X"], None), y=mine(d["y"]))
hc0 = res.with_cov("hc0")
re = mleppl.fit_mle(glmm, mine(d["x1"]), mine(d["gid"]), d["G"], y=mine(d["yg"]), random=["u"])
many = mleppl.fit_many(nb2, d["Xs"], y=mine(d["Y"], None))
np.savez(
    f"{out}/{pid}.npz",
    b=res.params["b"],
    se=res.se["b"],
    loglik=res.loglik,
    hc0=hc0.se["b"],
    table=res.summary().to_numpy(dtype=float),
    re_b=re.params["b"],
    re_s=re.params["s"],
    re_se=np.concatenate([np.ravel(re.se["b"]), np.ravel(re.se["s"])]),
    re_loglik=re.loglik,
    many_b=np.asarray(many.params["b"]),
    many_se=np.asarray(many.se["b"]),
)
