"""Sites and the layout of the flat parameter vectors: the only code that walks blocks.

A fitted model is a function of one flat vector ``z`` that concatenates the
unconstrained values of the free sites in trace order. Each block is mapped to
its site's support by the bijection NumPyro uses for that support. The flat
*constrained* vector (``param_names`` order) concatenates the sites' values.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Site", "Block", "Layout", "param_labels", "split_flat"]


def param_labels(name: str, shape: tuple[int, ...], coords: dict | None = None) -> list[str]:
    """Labels ``name[i,j]`` for every element of a site, C order; ``name`` for scalars.

    ``coords`` may name the entries of a vector site: ``{"beta": ["age", "sex"]}``
    gives ``beta[age]``, ``beta[sex]``.
    """
    if shape == ():
        return [name]
    names = (coords or {}).get(name)
    if names is not None and len(shape) == 1 and len(names) == shape[0]:
        return [f"{name}[{c}]" for c in names]
    return [
        f"{name}[{','.join(str(i) for i in idx)}]" for idx in itertools.product(*(range(s) for s in shape))
    ]


class Site(NamedTuple):
    """Static description of one free site."""

    name: str
    kind: str  # "sample" or "param"
    shape: tuple[int, ...]  # constrained shape
    unconstrained_shape: tuple[int, ...]
    support: Any  # numpyro constraint
    transform: Any  # unconstrained -> constrained
    bounded: bool  # support is not all of R^k: z -> ±inf reaches a boundary
    elementwise: bool  # the bijection maps each coordinate on its own (no simplex/Cholesky)


class Block(NamedTuple):
    """Where one site sits in the flat vectors."""

    site: Site
    z: slice  # in the unconstrained vector
    theta: slice  # in the flat constrained vector


def split_flat(entries, flat, *, batch: int = 0) -> dict:
    """Split the last axis of ``flat`` into ``{name: array of shape}`` for ``(name, shape)`` entries.

    ``batch`` leading axes are kept.
    """
    out, i = {}, 0
    lead = np.shape(flat)[:batch]
    for name, shape in entries:
        k = math.prod(shape)
        out[name] = np.reshape(flat[..., i : i + k], (*lead, *shape))
        i += k
    return out


class Layout(NamedTuple):
    """How the flat vectors are laid out over the free sites (static)."""

    sites: tuple[Site, ...]
    coords: tuple = ()  # (site name, tuple of labels) for named coordinates

    def blocks(self) -> Iterator[Block]:
        i = c = 0
        for s in self.sites:
            k, kc = math.prod(s.unconstrained_shape), math.prod(s.shape)
            yield Block(s, slice(i, i + k), slice(c, c + kc))
            i += k
            c += kc

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.sites)

    @property
    def size(self) -> int:
        """Length of the unconstrained vector z (the degrees of freedom)."""
        return sum(math.prod(s.unconstrained_shape) for s in self.sites)

    @property
    def coordinate_sites(self) -> list[str]:
        """The site of each unconstrained coordinate (entry of z)."""
        return [b.site.name for b in self.blocks() for _ in range(b.z.stop - b.z.start)]

    @property
    def constrained_sites(self) -> list[str]:
        """The site of each flat constrained parameter (entry of param_names)."""
        return [b.site.name for b in self.blocks() for _ in range(b.theta.stop - b.theta.start)]

    @property
    def param_names(self) -> list[str]:
        coords = dict(self.coords)
        return [lab for s in self.sites for lab in param_labels(s.name, s.shape, coords)]

    @property
    def shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        return [(s.name, s.shape) for s in self.sites]

    def z_labels(self) -> list[str]:
        """Labels of the unconstrained coordinates: ``b[1]`` for a real-valued site,
        ``u(sigma)`` for the unconstrained coordinate of a bounded one."""
        coords = dict(self.coords)
        out = []
        for s in self.sites:
            if tuple(s.unconstrained_shape) == tuple(s.shape):
                labs = param_labels(s.name, s.shape, coords)
            else:
                labs = [f"{s.name}~{i}" for i in range(math.prod(s.unconstrained_shape))]
            out += [f"u({lab})" for lab in labs] if s.bounded else labs
        return out

    def elementwise_coords(self) -> np.ndarray:
        """For each flat constrained parameter, the unconstrained coordinate it is a
        function of alone; ``-1`` where the site's bijection mixes coordinates."""
        out: list[int] = []
        for b in self.blocks():
            n = b.theta.stop - b.theta.start
            out += list(range(b.z.start, b.z.stop)) if b.site.elementwise else [-1] * n
        return np.array(out, dtype=int)

    def unravel(self, z: jax.Array) -> dict[str, jax.Array]:
        """Flat unconstrained vector -> dict of unconstrained site values."""
        return {b.site.name: jnp.reshape(z[b.z], b.site.unconstrained_shape) for b in self.blocks()}

    def constrain(self, z: jax.Array) -> dict[str, jax.Array]:
        """Flat unconstrained vector -> dict of constrained site values."""
        u = self.unravel(z)
        return {s.name: s.transform(u[s.name]) for s in self.sites}

    def unconstrain(self, values: dict) -> jax.Array:
        """Dict of constrained site values -> flat unconstrained vector."""
        transforms = tuple(s.transform for s in self.sites)
        vals = tuple(jnp.asarray(values[s.name], dtype=jnp.float64) for s in self.sites)
        try:  # one compiled program, not one per eager operation of each inverse bijection
            return _unconstrain_program(transforms, vals)
        except Exception:  # noqa: BLE001 - transforms that are not pytrees: eagerly
            return _unconstrain(transforms, vals)

    def flatten(self, values: dict) -> jax.Array:
        """Dict of constrained values -> flat constrained vector (param_names order)."""
        parts = [jnp.ravel(values[s.name]) for s in self.sites]
        return jnp.concatenate(parts) if parts else jnp.zeros((0,))

    def theta(self, z: jax.Array) -> jax.Array:
        """Flat unconstrained -> flat constrained, float64."""
        return self.flatten(self.constrain(z)).astype(jnp.float64)

    def with_blocks(self, z: np.ndarray, values: dict) -> np.ndarray:
        """A copy of flat ``z`` with the named sites' blocks set from constrained values."""
        z = np.array(z, dtype=np.float64, copy=True)
        for b in self.blocks():
            if b.site.name in values:
                v = jnp.asarray(values[b.site.name], dtype=jnp.float64)
                z[b.z] = np.ravel(np.asarray(b.site.transform.inv(v)))
        return z

    def split(self, flat: np.ndarray, *, batch: int = 0) -> dict[str, np.ndarray]:
        """Flat constrained vector(s) -> dict of constrained site values (NumPy)."""
        return split_flat(self.shapes, flat, batch=batch)


def _unconstrain(transforms, values) -> jax.Array:
    parts = [jnp.ravel(t.inv(v)) for t, v in zip(transforms, values)]
    return jnp.concatenate(parts) if parts else jnp.zeros((0,))


_unconstrain_program = jax.jit(_unconstrain)
