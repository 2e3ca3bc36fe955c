r"""The structure of the inner (random-effect) Hessian: how it is built, factored and solved.

A Laplace fit needs, at each inner Newton step and at the mode, the matrix
:math:`H = -\nabla_v^2 f(\theta, v)` of the joint log-density in the unconstrained random
effects: its solve :math:`H^{-1}g` (Newton steps, implicit derivatives of the mode), its
log-determinant (the Laplace term) and the diagonal of its inverse (conditional
variances). Each structure below owns all four, and its cache key; the rest of the package
talks only to the structure chosen once when the random effects are bound
(:func:`mleppl.model.latent.random_spec`), as an optimistix solver's ``linear_solver`` field
is swapped without touching its iteration.

``Dense``
    :math:`H` formed by forward-over-reverse differentiation (``q`` Hessian-vector
    products) and factored by LU. For effects without a recognisable structure, up to a
    few thousand coordinates.
``BlockDiagonal``
    Effects in one plate of groups: one :math:`q_g\times q_g` block per group, recovered
    from :math:`q_g` Hessian-vector products (one per position within a block,
    "colouring"); cost linear in the number of groups.
``Sparse``
    Effects in several plates ("factors": crossed, nested or partially crossed, like
    lme4's ``(1|a) + (1|b)``). Every term of :math:`f` (one observation's log-likelihood, one
    level's random-effect density) touches at most one level of each factor, so the
    non-zero entries of :math:`H` are found from the model itself: which level of each
    factor each term touches is read off two directional derivatives at bind time, and the
    entries are the terms' second derivatives along the :math:`K = \sum_f q_f` position
    directions (``K²`` forward passes of the per-term log-density, whatever the number of
    levels), summed into their cells. The largest factor :math:`F_1` (block-diagonal
    :math:`A`: its levels do not interact) is eliminated and the Schur complement onto the
    rest is dense, or block-diagonal when the rest is one factor nested in :math:`F_1`
    (classes within schools):

    .. math:: H = \begin{pmatrix} A & B \\ B^\top & C \end{pmatrix},\quad
       S = C - B^\top A^{-1} B,\quad \log\det H = \log\det A + \log\det S,

    which is the fill pattern of lme4's and TMB's sparse Cholesky factor for two crossed
    factors (the first factor's columns stay diagonal, the second's fill in). :math:`B` is
    kept as its non-zero :math:`(F_1\text{-level}, \text{rest coordinate})` cells and
    :math:`B^\top A^{-1}B` is summed over the pairs of cells that share an
    :math:`F_1` level (or, where that list would be long, as one dense product). Every
    operation is JAX arithmetic, so it runs under ``jit`` and differentiates to any order.

Why not a general sparse Cholesky: CHOLMOD (lme4, TMB) has no wheel here (scikit-sparse
builds from source against SuiteSparse headers), ``jax.experimental.sparse`` has no sparse
factorization that differentiates, and cholespy factors but does not differentiate the
log-determinant to the fourth order a Laplace fit's outer Hessian needs; the elimination
above is exact for the designs mixed models have (see ``docs/guide/crossed.md`` for what
each path costs).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..core.blocks import block_inv_diag, block_logdet, block_solve

__all__ = ["Dense", "BlockDiagonal", "Sparse", "Factor", "sparse_pattern"]


class DenseFactor(NamedTuple):
    """A symmetric matrix with its LU factors (computed once, outside differentiation: the
    derivatives below are written in the matrix and its inverse, never through the factors)."""

    s: jax.Array
    lu: jax.Array
    piv: jax.Array


def dense_factor(s) -> DenseFactor:
    lu, piv = jax.lax.stop_gradient(jax.scipy.linalg.lu_factor(s))
    return DenseFactor(s, lu, piv)


def dense_solve(fac: DenseFactor, g):
    """s⁻¹ g, differentiated through the matrix product only (as ``jnp.linalg.solve``)."""

    def solve(_, b):
        return jax.scipy.linalg.lu_solve((fac.lu, fac.piv), b)

    return jax.lax.custom_linear_solve(lambda x: fac.s @ x, g, solve, symmetric=True)


@jax.custom_jvp
def _inverse(s, lu, piv):
    """s⁻¹ of a symmetric matrix from its LU factors, differentiated as −s⁻¹ ds s⁻¹ (two
    matrix products per tangent, where JAX's rule for LU solves triangular systems with
    matrix right-hand sides and factors again)."""
    return jax.scipy.linalg.lu_solve((lu, piv), jnp.eye(s.shape[-1], dtype=s.dtype))


@_inverse.defjvp
def _inverse_jvp(primals, tangents):
    s, lu, piv = primals
    ds = tangents[0]
    si = _inverse(s, lu, piv)
    return si, -si @ ds @ si


@jax.custom_jvp
def _logdet(s, lu, piv):
    """log det of a symmetric matrix from its LU factors (NaN unless the determinant is
    positive); its derivative tr(s⁻¹ ds) is one elementwise product with the inverse."""
    d = jnp.diagonal(lu)
    swaps = jnp.sum(piv != jnp.arange(piv.size, dtype=piv.dtype))
    negative = (jnp.sum(d < 0) + swaps) % 2 == 1
    return jnp.where(negative | jnp.any(d == 0), jnp.nan, jnp.sum(jnp.log(jnp.abs(d))))


@_logdet.defjvp
def _logdet_jvp(primals, tangents):
    s, lu, piv = primals
    return _logdet(s, lu, piv), jnp.sum(_inverse(s, lu, piv) * tangents[0])


def dense_logdet(fac: DenseFactor):
    return _logdet(fac.s, fac.lu, fac.piv)


def dense_inverse(fac: DenseFactor):
    return _inverse(fac.s, fac.lu, fac.piv)


# --------------------------------------------------------------------------- dense
class Dense(NamedTuple):
    """A dense inner Hessian (LU); ``size`` coordinates."""

    size: int

    @property
    def key(self) -> tuple:
        return ("dense", self.size)

    @property
    def kind(self) -> str:
        return "dense"

    row_bound = False  # its static arrays do not depend on the number of rows

    def hessian(self, f, terms, v):
        return -jax.jacfwd(jax.grad(f))(v)

    def matvec(self, h, x):
        return h @ x

    def factor(self, h):
        return dense_factor(h)

    def solve(self, fac, g):
        return dense_solve(fac, g)

    def logdet(self, fac):
        return dense_logdet(fac)

    def inv_diag(self, fac):
        return jnp.diag(dense_inverse(fac))


# --------------------------------------------------------------------------- block-diagonal
class BlockDiagonal(NamedTuple):
    """One block per group of a plate: ``colors`` (position of each v coordinate within its
    group's block) and ``groups`` (group of each v coordinate)."""

    colors: np.ndarray
    groups: np.ndarray
    n_groups: int
    plate: str

    @property
    def size(self) -> int:
        return int(self.colors.size)

    @property
    def block(self) -> int:
        return int(self.colors.max()) + 1

    @property
    def key(self) -> tuple:
        return ("block", self.n_groups, self.colors.tobytes(), self.groups.tobytes())

    @property
    def kind(self) -> str:
        return "block-diagonal"

    row_bound = False

    def _order(self):
        """The position in v of each (group, colour) cell, row-major, or None where v is
        already in that order (one site over the plate's leading axis): the moves between v
        and (G, q) are then reshapes, which cost nothing to compile or run."""
        pos = np.asarray(self.groups) * self.block + np.asarray(self.colors)
        if np.array_equal(pos, np.arange(pos.size)):
            return None
        order = np.empty_like(pos)
        order[pos] = np.arange(pos.size)
        return order

    def gather(self, x):
        """A vector over v (or rows over v) as (G, q, ...) by group and colour."""
        order = self._order()
        x = x if order is None else x[order]
        return x.reshape(self.n_groups, self.block, *x.shape[1:])

    def scatter(self, xg):
        """The inverse of :meth:`gather` for a (G, q) array."""
        x = xg.reshape(-1)
        order = self._order()
        if order is None:
            return x
        inv = np.empty_like(order)
        inv[order] = np.arange(order.size)
        return x[inv]

    def blocks_of(self, hvp):
        """The diagonal blocks (G, q, q) of a block-diagonal matrix given as ``hvp``."""
        colors = np.asarray(self.colors)
        cols = jnp.stack(
            [hvp(jnp.asarray((colors == c).astype(np.float64))) for c in range(self.block)], axis=1
        )
        return self.gather(cols)  # (G, q, q): row (group, colour i), column colour j

    def hessian(self, f, terms, v):
        grad_v = jax.grad(f)
        return -self.blocks_of(lambda t: jax.jvp(grad_v, (v,), (t,))[1])

    def matvec(self, h, x):
        return self.scatter(jnp.einsum("gij,gj->gi", h, self.gather(x)))

    def factor(self, h):
        return h

    def solve(self, fac, g):
        return self.scatter(block_solve(fac, self.gather(g)))

    def logdet(self, fac):
        return jnp.sum(block_logdet(fac))

    def group_logdet(self, fac):
        """log det of each group's block (G,)."""
        return block_logdet(fac)

    def inv_diag(self, fac):
        return self.scatter(block_inv_diag(fac))


# --------------------------------------------------------------------------- sparse (factors)
class Factor(NamedTuple):
    """A grouping factor: the random-effect coordinates over the cells of some plates."""

    name: str  # the plates, joined by "×"
    coords: np.ndarray  # (levels, positions): the v coordinate of each (level, position)

    @property
    def levels(self) -> int:
        return int(self.coords.shape[0])

    @property
    def positions(self) -> int:
        return int(self.coords.shape[1])


class SparseFactorization(NamedTuple):
    a: jax.Array  # (G1, q1, q1) blocks of the eliminated factor
    w: jax.Array  # (nnz, q1): A⁻¹B by cell
    bv: jax.Array  # (nnz, q1): B by cell
    s: Any  # Schur complement: DenseFactor of (m, m), or (G2, q2, q2) blocks


class Sparse(NamedTuple):
    """Eliminate the largest factor (block-diagonal) and factor the Schur complement onto the
    remaining coordinates (dense, or block-diagonal for a nested factor).

    Static arrays (found by :func:`sparse_pattern`): ``idx1`` (G1, q1) the v coordinates of
    the eliminated factor; ``rest`` (m,) the others (by level then position when the rest is
    block-diagonal with blocks of ``rest_block``); ``term_pos`` (T, K) the v coordinate each
    term touches along each position direction (−1: none); ``color`` (q,) the direction of
    each v coordinate; the cells of B (``ba`` level, ``br`` rest coordinate); the ids of
    each term's entries in A, B and C; and the pairs of B cells sharing a level.
    """

    size: int
    names: tuple  # factor names, eliminated first
    idx1: np.ndarray
    rest: np.ndarray
    rest_block: int  # 0: dense Schur complement; else its block size (nested)
    color: np.ndarray
    n_colors: int
    c1: np.ndarray  # the K-indices of the eliminated factor's directions (q1,)
    cr: np.ndarray  # the K-indices of the rest's directions (Kr,)
    a_ids: np.ndarray  # (T,) level of the eliminated factor (G1: none)
    b_ids: np.ndarray  # (T, q1, Kr) flat id into (nnz, q1) (dump: nnz·q1)
    c_ids: np.ndarray  # (T, Kr, Kr) flat id into the rest storage (dump: its size)
    ba: np.ndarray  # (nnz,) eliminated-factor level of each B cell
    br: np.ndarray  # (nnz,) rest coordinate of each B cell
    pairs: tuple  # (e1, e2, target) over B cells with the same level, or () for the dense product

    @property
    def key(self) -> tuple:
        arrays = (self.idx1, self.rest, self.color, self.a_ids, self.b_ids, self.c_ids, self.ba, self.br)
        return ("sparse", self.size, self.names, self.rest_block, *(a.tobytes() for a in arrays))

    @property
    def kind(self) -> str:
        return "sparse (" + ", ".join(self.names) + ")" + (", nested" if self.rest_block else "")

    row_bound = True  # term_pos and the entry ids are per row: no padding to row buckets

    @property
    def g1(self) -> int:
        return int(self.idx1.shape[0])

    @property
    def q1(self) -> int:
        return int(self.idx1.shape[1])

    @property
    def m(self) -> int:
        return int(self.rest.size)

    @property
    def nnz(self) -> int:
        return int(self.ba.size)

    @property
    def rest_storage(self) -> int:
        if self.rest_block:
            return self.m * self.rest_block
        return self.m * self.m

    # ---- assembly
    def curvatures(self, terms, v):
        """Second derivatives of every term along every pair of position directions (T, K, K)."""
        color = jnp.asarray(self.color)

        def along(s):
            return terms(v + s[color])

        s0 = jnp.zeros(self.n_colors)
        return jax.jacfwd(jax.jacfwd(along))(s0)

    def hessian(self, f, terms, v):
        d = -self.curvatures(terms, v)  # (T, K, K): −∂²ℓ_t
        c1, cr = np.asarray(self.c1), np.asarray(self.cr)
        g1, q1 = self.g1, self.q1
        a = jax.ops.segment_sum(d[:, c1][:, :, c1], jnp.asarray(self.a_ids), num_segments=g1 + 1)[:g1]
        bv = jax.ops.segment_sum(
            d[:, c1][:, :, cr].reshape(-1),
            jnp.asarray(self.b_ids.reshape(-1)),
            num_segments=self.nnz * q1 + 1,
        )[:-1].reshape(self.nnz, q1)
        cs = jax.ops.segment_sum(
            d[:, cr][:, :, cr].reshape(-1),
            jnp.asarray(self.c_ids.reshape(-1)),
            num_segments=self.rest_storage + 1,
        )[:-1]
        return a, bv, self._rest_matrix(cs)

    def _rest_matrix(self, flat):
        if self.rest_block:
            k = self.rest_block
            return flat.reshape(self.m // k, k, k)
        return flat.reshape(self.m, self.m)

    # ---- products and solves over the two parts
    def _split(self, x):
        return x[jnp.asarray(self.idx1)], x[jnp.asarray(self.rest)]

    def _join(self, x1, x2):
        """The vector over v from its two parts (a gather: it transposes, a scatter would not)."""
        both = np.concatenate([self.idx1.reshape(-1), self.rest])
        inv = np.empty_like(both)
        inv[both] = np.arange(both.size)
        return jnp.concatenate([x1.reshape(-1), x2])[jnp.asarray(inv)]

    def _rest_mv(self, s, x2):
        if self.rest_block:
            k = self.rest_block
            return jnp.einsum("gij,gj->gi", s, x2.reshape(-1, k)).reshape(-1)
        return s @ x2

    def _b_mv(self, bv, x2):
        """B x₂ as (G1, q1)."""
        return jax.ops.segment_sum(
            bv * x2[jnp.asarray(self.br)][:, None], jnp.asarray(self.ba), num_segments=self.g1
        )

    def _bt_mv(self, bv, x1):
        """Bᵀ x₁ (m,) for x₁ (G1, q1)."""
        return jax.ops.segment_sum(
            jnp.sum(bv * x1[jnp.asarray(self.ba)], axis=1), jnp.asarray(self.br), num_segments=self.m
        )

    def matvec(self, h, x):
        a, bv, c = h
        x1, x2 = self._split(x)
        y1 = jnp.einsum("gij,gj->gi", a, x1) + self._b_mv(bv, x2)
        y2 = self._bt_mv(bv, x1) + self._rest_mv(c, x2)
        return self._join(y1, y2)

    def _dense_cells(self, x):
        """Values by B cell (nnz, q1) as the dense (G1·q1, m) matrix."""
        rows = (jnp.asarray(self.ba)[:, None] * self.q1 + jnp.arange(self.q1)[None, :]).reshape(-1)
        cols = jnp.repeat(jnp.asarray(self.br), self.q1)
        return jnp.zeros((self.g1 * self.q1, self.m)).at[rows, cols].add(x.reshape(-1))

    def factor(self, h) -> SparseFactorization:
        a, bv, c = h
        ba = jnp.asarray(self.ba)
        w = block_solve(a[ba], bv)  # (nnz, q1): A⁻¹B cell by cell
        if self.pairs:
            e1, e2, target = (jnp.asarray(p) for p in self.pairs)
            prod = jnp.sum(bv[e1] * w[e2], axis=1)
            s = c - self._rest_matrix(
                jax.ops.segment_sum(prod, target, num_segments=self.rest_storage, indices_are_sorted=True)
            )
        else:  # one dense product Bᵀ(A⁻¹B) over (G1·q1) × m
            s = c - self._dense_cells(bv).T @ self._dense_cells(w)
        return SparseFactorization(a, w, bv, s if self.rest_block else dense_factor(s))

    def _rest_solve(self, s, g2):
        if self.rest_block:
            k = self.rest_block
            return block_solve(s, g2.reshape(-1, k)).reshape(-1)
        return dense_solve(s, g2)

    def solve(self, fac: SparseFactorization, g):
        g1, g2 = self._split(g)
        y1 = block_solve(fac.a, g1)
        x2 = self._rest_solve(fac.s, g2 - self._bt_mv(fac.bv, y1))
        x1 = y1 - self._b_mv(fac.w, x2)
        return self._join(x1, x2)

    def logdet(self, fac: SparseFactorization):
        rest = jnp.sum(block_logdet(fac.s)) if self.rest_block else dense_logdet(fac.s)
        return jnp.sum(block_logdet(fac.a)) + rest

    def inv_diag(self, fac: SparseFactorization):
        """diag H⁻¹: diag S⁻¹ for the rest; diag A⁻¹ + diag(W S⁻¹ Wᵀ) for the eliminated factor."""
        ba, br = jnp.asarray(self.ba), jnp.asarray(self.br)
        if self.rest_block:
            k = self.rest_block
            sinv = jnp.linalg.inv(fac.s) if k > 1 else 1.0 / fac.s  # (G2, k, k) blocks
            d2 = jnp.diagonal(sinv, axis1=-2, axis2=-1).reshape(-1)
            # W S⁻¹ Wᵀ within a level: its cells lie in one block of S each
            # (a nested complement is always summed over pairs, and a pair lies in one block)
            e1, e2, _ = (jnp.asarray(p) for p in self.pairs)
            val = sinv[br[e1] // k, br[e1] % k, br[e2] % k]
        else:
            sinv = dense_inverse(fac.s)
            d2 = jnp.diag(sinv)
            if self.pairs:
                e1, e2, _ = (jnp.asarray(p) for p in self.pairs)
                val = sinv[br[e1], br[e2]]
            else:
                wd = self._dense_cells(fac.w)
                d1 = jnp.sum((wd @ sinv) * wd, axis=1).reshape(self.g1, self.q1)
                return self._join(block_inv_diag(fac.a) + d1, d2)
        contrib = jax.ops.segment_sum(fac.w[e1] * fac.w[e2] * val[:, None], ba[e1], num_segments=self.g1)
        return self._join(block_inv_diag(fac.a) + contrib, d2)


# The Schur update is summed over pairs of B cells while pairs · PAIR_COST ≤ the dense product's
# multiply-adds: one pair's scatter-add costs about as much as 300 of them on this CPU (1.8·10⁶
# pairs in 11 ms against 3.8·10⁹ multiply-adds in 90 ms, measured).
PAIR_COST = 300.0


def sparse_pattern(factors: list[Factor], levels: np.ndarray, size: int) -> Sparse | None:
    """The sparse structure for ``factors`` given the level each term touches in each factor.

    ``levels`` is (T, F): the level of factor f that term t touches (−1: none). Returns None
    when fewer than two factors carry terms (another structure serves).
    """
    nf = len(factors)
    if nf < 2:
        return None
    order = sorted(range(nf), key=lambda f: -factors[f].coords.size)
    first = order[0]
    f1 = factors[first]
    rest_f = [factors[f] for f in order[1:]]
    # direction (colour) of each coordinate: (factor, position)
    color = np.full(size, -1, dtype=np.int64)
    k = 0
    fcol = {}
    for f in order:
        fac = factors[f]
        fcol[f] = np.arange(k, k + fac.positions)
        color[fac.coords] = np.broadcast_to(fcol[f], fac.coords.shape)
        k += fac.positions
    n_colors = k
    if np.any(color < 0):
        return None
    c1 = fcol[first]
    cr = np.concatenate([fcol[f] for f in order[1:]])
    # rest coordinates: one factor (candidate for nesting) by level then position, else stacked
    rest = np.concatenate([fac.coords.reshape(-1) for fac in rest_f])
    rest_index = np.full(size, -1, dtype=np.int64)
    rest_index[rest] = np.arange(rest.size)
    m = rest.size
    t = levels.shape[0]
    lev1 = levels[:, first]
    # the rest coordinate each term touches along each rest direction
    rpos = np.full((t, cr.size), -1, dtype=np.int64)
    j = 0
    for f in order[1:]:
        fac = factors[f]
        lv = levels[:, f]
        for p in range(fac.positions):
            rpos[:, j] = np.where(lv >= 0, rest_index[fac.coords[np.maximum(lv, 0), p]], -1)
            j += 1
    # cells of B: (level of F1, rest coordinate) touched by a term together
    has1 = lev1 >= 0
    cell_keys = np.where(has1[:, None] & (rpos >= 0), lev1[:, None] * m + rpos, -1)
    uniq = np.unique(cell_keys[cell_keys >= 0])
    nnz = uniq.size
    ba, br = uniq // m, uniq % m
    cell_of = np.where(cell_keys >= 0, np.searchsorted(uniq, np.maximum(cell_keys, 0)), -1)  # (T, Kr)
    q1 = f1.positions
    b_ids = np.where(
        cell_of[:, None, :] >= 0, cell_of[:, None, :] * q1 + np.arange(q1)[None, :, None], nnz * q1
    ).astype(np.int64)
    a_ids = np.where(has1, lev1, f1.levels).astype(np.int64)
    # the Schur complement's pattern: C's cells and those of Bᵀ A⁻¹ B (pairs sharing a level)
    counts = np.bincount(ba, minlength=f1.levels)
    n_pairs = int(np.sum(counts.astype(np.int64) ** 2))
    dense_cells = f1.levels * q1 * m

    def level_pairs():
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rep = counts[ba]
        e1 = np.repeat(np.arange(nnz), rep)
        offs = np.arange(e1.size) - np.repeat(np.cumsum(rep) - rep, rep)
        return e1, starts[ba[e1]] + offs

    ok = (rpos[:, :, None] >= 0) & (rpos[:, None, :] >= 0)
    rest_block = 0
    if len(rest_f) == 1:
        kb = rest_f[0].positions
        same_c = (rpos[:, :, None] // kb == rpos[:, None, :] // kb) | ~ok
        # nested: every level of the eliminated factor meets one level of the other
        blocks_per_level = np.zeros(f1.levels, dtype=np.int64)
        if nnz:
            first_block = np.full(f1.levels, -1, dtype=np.int64)
            first_block[ba[::-1]] = (br // kb)[::-1]
            blocks_per_level = np.bincount(ba[(br // kb) != first_block[ba]], minlength=f1.levels)
        if not np.any(blocks_per_level) and np.all(same_c):
            rest_block = kb
    if rest_block:
        kb = rest_block
        e1, e2 = level_pairs()
        target = (br[e1] // kb) * kb * kb + (br[e1] % kb) * kb + (br[e2] % kb)
        c_flat = (rpos[:, :, None] // kb) * kb * kb + (rpos[:, :, None] % kb) * kb + (rpos[:, None, :] % kb)
        c_ids = np.where(ok, c_flat, m * kb)
        pairs = (e1, e2, target)
    else:
        c_ids = np.where(ok, rpos[:, :, None] * m + rpos[:, None, :], m * m)
        # the pairs where they are cheaper than the dense product B^T (A^-1 B) and take no more
        # memory than the dense B (MovieLens-sized: 10^8 pairs, the product instead)
        if n_pairs * PAIR_COST <= dense_cells * m and n_pairs <= dense_cells:
            e1, e2 = level_pairs()
            pairs = (e1, e2, br[e1] * m + br[e2])
        else:
            pairs = ()
    if pairs:  # by target: the scatter of the Schur update then runs over sorted indices
        by = np.argsort(pairs[2], kind="stable")
        pairs = tuple(p[by] for p in pairs)
    return Sparse(
        size=size,
        names=tuple(factors[f].name for f in order),
        idx1=f1.coords.astype(np.int64),
        rest=rest.astype(np.int64),
        rest_block=int(rest_block),
        color=color,
        n_colors=int(n_colors),
        c1=c1.astype(np.int64),
        cr=cr.astype(np.int64),
        a_ids=a_ids,
        b_ids=b_ids,
        c_ids=c_ids.astype(np.int64),
        ba=ba.astype(np.int64),
        br=br.astype(np.int64),
        pairs=tuple(np.asarray(p, dtype=np.int64) for p in pairs),
    )
