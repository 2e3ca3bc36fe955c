"""One process of the two-process check in ``test_distributed.py`` (run as a script).

``python _distributed_worker.py PROCESS_ID PORT OUT_DIR``: joins a two-process JAX runtime on
localhost (gloo collectives on CPU), builds global arrays holding this process's half of the
rows, fits, and saves what it got to ``OUT_DIR/PROCESS_ID.npz``.
"""

import sys

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P


def main(pid: int, port: int, out: str) -> None:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2, process_id=pid)

    from _distributed_models import data, glmm, logit, nb2

    import mleppl  # after initialize: nothing in mleppl may start JAX's backend first

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
    cl = res.with_cov("cluster", groups=mine(d["clusters"]))
    boot = mleppl.bootstrap(res, 40, rng_key=1)
    pboot = mleppl.bootstrap(res, 40, kind="parametric", rng_key=2)
    re = mleppl.fit_mle(glmm, mine(d["x1"]), mine(d["gid"]), d["G"], y=mine(d["yg"]), random=["u"])
    many = mleppl.fit_many(nb2, d["Xs"], y=mine(d["Y"], None))
    np.savez(
        f"{out}/{pid}.npz",
        b=res.params["b"],
        se=res.se["b"],
        loglik=res.loglik,
        hc0=hc0.se["b"],
        cluster=cl.se["b"],
        boot=boot.flat,
        pboot=pboot.flat,
        boot_accel=boot.acceleration,
        table=res.summary().to_numpy(dtype=float),
        re_b=re.params["b"],
        re_s=re.params["s"],
        re_se=np.concatenate([np.ravel(re.se["b"]), np.ravel(re.se["s"])]),
        re_loglik=re.loglik,
        many_b=np.asarray(many.params["b"]),
        many_se=np.asarray(many.se["b"]),
    )


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
