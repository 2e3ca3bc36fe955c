"""The SVI program (``method="svi"``): NumPyro's SVI with an ``AutoDelta`` guide on the
prior-free model, its state the flat unconstrained vector ``z``, stepped in compiled
windows of steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .priors import prior_free
from .sites import ModelSites


class SviProgram(NamedTuple):
    """NumPyro's SVI on the prior-free model with an ``AutoDelta`` guide, stepped in windows.

    ``init(z, rng_key)`` is the SVI state with the guide's parameters at the flat
    unconstrained point ``z``; ``window(state, data)`` runs ``steps`` SVI steps
    (one compiled ``lax.scan``) and returns the new state, the per-step losses and
    the average of the iterates over the window (flat, unconstrained).
    """

    init: Callable
    window: Callable
    steps: int


def svi_program(
    model: Callable, sites: ModelSites, layout, rebuild: Callable, optimizer, steps: int, args, kwargs
):
    """Build :class:`SviProgram` for ``model`` (the user's model, subsample plates intact).

    The guide's ``{site}_auto_loc`` parameters (and the model's own ``numpyro.param``
    sites) are optimized on the unconstrained scale of ``biject_to(support)``, the same
    bijection as mleppl's flat vector ``z``, so the optimizer state is ``z`` itself,
    split by site. ``optimizer`` is an optax ``GradientTransformation``; ``args, kwargs``
    (the data) are used once to set up the guide.
    """
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoDelta
    from numpyro.optim import optax_to_numpyro

    pf = prior_free(model, sites)
    guide = AutoDelta(pf)
    svi = SVI(pf, guide, optax_to_numpyro(optimizer), Trace_ELBO())
    blocks = list(layout.blocks())
    names = [f"{b.site.name}_auto_loc" if b.site.kind == "sample" else b.site.name for b in blocks]
    # set the guide up once (its prototype trace); the state is rebuilt from z below
    proto = svi.init(jax.random.PRNGKey(0), *args, **kwargs)
    got = set(svi.optim.get_params(proto.optim_state))
    if got != set(names):
        raise ValueError(
            f"method='svi': expected the guide's parameters {sorted(names)}, got {sorted(got)} "
            "(a model whose parameters change between traces is not supported)"
        )

    def to_z(params_u):
        return jnp.concatenate([jnp.ravel(params_u[n]).astype(jnp.float64) for n in names])

    def init(z, rng_key):
        u = layout.unravel(z)
        params = {n: u[b.site.name] for n, b in zip(names, blocks)}
        return proto._replace(optim_state=svi.optim.init(params), rng_key=rng_key)

    def window(state, data):
        a, kw = rebuild(data)

        def body(carry, _):
            st, zsum = carry
            st, loss = svi.stable_update(st, *a, **kw)
            return (st, zsum + to_z(svi.optim.get_params(st.optim_state))), loss

        p = layout.size
        (state, zsum), losses = jax.lax.scan(body, (state, jnp.zeros((p,))), None, length=steps)
        return state, losses, zsum / steps

    return SviProgram(init, jax.jit(window), steps)
