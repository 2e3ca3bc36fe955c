"""L-BFGS (optax, zoom line search) on the mean-scaled objective: cheap steps for large data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

__all__ = ["LbfgsState", "lbfgs"]


class LbfgsState(NamedTuple):
    z: jax.Array
    opt_state: Any  # optax's L-BFGS state
    k: jax.Array  # steps taken
    gmax: jax.Array  # ‖∇‖∞ of the scaled objective at z
    finite: jax.Array  # the last update was finite


def lbfgs(fun_scaled: Callable, z0, *, max_steps: int, gtol: float) -> LbfgsState:
    """L-BFGS until ‖∇‖∞ ≤ gtol or max_steps; non-finite updates end the loop at the last good point."""
    opt = optax.lbfgs()
    vg = optax.value_and_grad_from_state(fun_scaled)

    def cond(s: LbfgsState):
        return s.finite & (s.gmax > gtol) & (s.k < max_steps)

    def body(s: LbfgsState) -> LbfgsState:
        value, grad = vg(s.z, state=s.opt_state)
        updates, state = opt.update(grad, s.opt_state, s.z, value=value, grad=grad, value_fn=fun_scaled)
        z_new = optax.apply_updates(s.z, updates)
        ok = jnp.all(jnp.isfinite(z_new))
        g_new = optax.tree.get(state, "grad")
        gmax = jnp.max(jnp.abs(g_new), initial=0.0)
        return LbfgsState(
            jnp.where(ok, z_new, s.z), state, s.k + 1, jnp.where(jnp.isfinite(gmax), gmax, jnp.inf), ok
        )

    # the first gradient is taken inside the loop (one copy of the gradient code)
    s0 = LbfgsState(
        z0, opt.init(z0), jnp.asarray(0, jnp.int32), jnp.asarray(jnp.inf, z0.dtype), jnp.asarray(True)
    )
    return jax.lax.while_loop(cond, body, s0)
