r"""Row buckets: one compiled fit for every dataset size in a bucket.

A compiled program is specialised to the shapes of its inputs, so a model refitted on
data with another number of rows (a subset, new data, a bootstrap by hand) used to
compile everything again: 1–5 s for a GLM or GLMM. For the fit program the data are
instead padded along the observation plate to the next *bucket* size
:math:`B = \lceil 2^{k/4} \rceil_8 \ge n` (sizes grow by 19 % per bucket, rounded up to a
multiple of 8) by repeating the last row, and every observed term past row :math:`n`
is masked out (NumPyro's ``MaskedDistribution``: exactly 0 in the log-density and its
derivatives); :math:`n` enters the program as data. Any :math:`n` of the bucket reuses
the program, and the log-likelihood is the unpadded one (the padded terms are zeros, so
the sums differ from the unpadded ones at the level of rounding only).

Used where it is exact and cheap, else the data go unpadded (the program is then
specialised to :math:`n`, as before): the data traced as inputs (not held as
constants), every observed site in one plate whose size is the leading axis of some data
argument and which no latent or deterministic site uses; no subsampled plate, no
discrete latent, no ``obs_mask``, no deterministic site, no quadrature (``nagq > 1`` uses
per-observation group ids); unsharded data of at most ``MAX_PAD_BYTES``. Whether the
padded data keep the model's structure is checked by one abstract trace (no compilation).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ..adapters import numpyro as npa
from ..core import cache

__all__ = ["bucket_size", "padded", "MAX_PAD_BYTES"]

# Larger data go unpadded: the copy would cost memory, and their compilation is a small
# part of their fit time.
MAX_PAD_BYTES = 64 * 2**20


def bucket_size(n: int) -> int:
    """The smallest bucket size ≥ ``n``: ⌈2^(k/4)⌉ rounded up to a multiple of 8."""
    if n <= 8:
        return 8
    k = math.ceil(4 * math.log2(n)) - 1  # the rounding up to 8 may let the bucket below hold n
    while True:
        b = -(-math.ceil(2 ** (k / 4)) // 8) * 8
        if b >= n:
            return b
        k += 1


def padded(problem):
    """``problem`` with its data padded to the bucket size (``problem.rows`` set), or
    ``problem`` itself where bucketing does not apply (see the module notes)."""
    plate = _plate(problem)
    if plate is None:
        return problem
    name, n = plate
    b = bucket_size(n)
    data = problem.data
    rows = [x.ndim >= 1 and x.shape[0] == n for x in data]
    if not any(rows) or sum(x.nbytes for x in data) > MAX_PAD_BYTES:
        return problem
    if any(isinstance(x, jax.Array) and len(x.sharding.device_set) > 1 for x in data):
        return problem
    shapes = [jax.ShapeDtypeStruct((b, *x.shape[1:]) if r else x.shape, x.dtype) for x, r in zip(data, rows)]
    same = cache.get_or_build_fact(
        (*problem.structure_key, "bucket", b), lambda: _same_structure(problem, name, n, b, shapes)
    )
    if not same:
        return problem
    new = tuple(_pad(x, b) if r else x for x, r in zip(data, rows))
    n_valid = np.asarray(n, dtype=np.int64)  # data of the program (the number of real rows)
    return problem._replace(
        data=(*new, n_valid), key=_key_with_shapes(problem.key, [x.shape for x in new]), rows=(name,)
    )


def _plate(problem):
    """(plate, size): the one plate every observed site lies in, or None where bucketing
    does not apply."""
    sites = problem.sites
    if (
        problem.constants
        or problem.subsample
        or problem.row_chunk
        or problem.rows
        or sites.discrete
        or sites.deterministic
        or sites.imputed
        or not sites.data
        or (problem.random is not None and (problem.random.nagq > 1 or problem.random.structure.row_bound))
    ):
        return None
    common = None
    for o in sites.data:
        here = {(p, size) for p, _, size in o.plates}
        common = here if common is None else common & here
    if not common:
        return None
    name, n = sorted(common)[0]
    used = {d for _, dims in sites.dims for d in dims}
    used |= {p for _, plates in sites.random_plates for p, _ in plates}
    if name in used:
        return None
    return name, n


def _same_structure(problem, name: str, n: int, b: int, shapes) -> bool:
    """Abstract traces with the data as given and padded: the same sites, latent ones of the
    same shapes, observed ones in plate ``name`` of size ``b`` (not ``n``)."""
    pr = problem.static()
    z = jnp.zeros(pr.layout.size)

    def inputs(data):
        args, kwargs = pr.rebuild(data)
        values = pr.layout.constrain(z)
        if pr.random is not None:
            values = {**values, **pr.random.layout.constrain(jnp.zeros(pr.random.size))}
        return args, kwargs, values

    try:
        before = npa.abstract_sites(pr.prior_free_model, inputs, [_abstract(x) for x in problem.data])
        after = npa.abstract_sites(pr.prior_free_model, inputs, shapes)
    except Exception:  # noqa: BLE001 - a model that does not take padded data is fitted unpadded
        return False
    if before.keys() != after.keys():
        return False
    for site, (kind, observed, shape, plates) in after.items():
        if not observed:
            if (kind, shape) != (before[site][0], before[site][2]) or any(p == name for p, _ in plates):
                return False
        elif (name, b) not in plates or (name, n) not in before[site][3]:
            return False
    return True


def _abstract(x):
    return jax.ShapeDtypeStruct(x.shape, x.dtype)


def _pad(x, b: int):
    """``x`` with its last row repeated to ``b`` rows (values inside every support)."""
    a = np.asarray(x)
    return jnp.asarray(np.concatenate([a, np.repeat(a[-1:], b - a.shape[0], axis=0)]))


def _key_with_shapes(key, shapes) -> tuple:
    """The argument key of ``split_inputs`` with the array leaves' shapes replaced."""
    n_args, kw, structure = key
    it = iter(shapes)
    out = []
    for treedef, kinds in structure:
        out.append((treedef, tuple(("array", next(it), k[2]) if k[0] == "array" else k for k in kinds)))
    return (n_args, kw, tuple(out))
