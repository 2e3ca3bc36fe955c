"""One enumeration of result codes, shared by the optimizer, profile and bootstrap.

Inside compiled code a code is an ``int32`` array (failures are data); the thin
Python shell turns it into :attr:`Status.message` and a warning. ``RUNNING`` is
the loop-continuation code and never leaves a solver.
"""

from __future__ import annotations

import enum

__all__ = ["Status", "succeeded"]


class Status(enum.IntEnum):
    """How a solver (or one profile endpoint, one bootstrap refit) ended."""

    RUNNING = -1
    CONVERGED = 0
    MAX_STEPS = 1
    STALLED = 2
    NONFINITE_START = 3
    NOT_POSITIVE_DEFINITE = 4
    OPEN = 5
    INNER_FAILED = 6
    BETTER_OPTIMUM = 7
    NOISE_FLOOR = 8
    DIVERGING = 9
    STOCHASTIC = 10

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_MESSAGES = {
    Status.RUNNING: "running",
    Status.CONVERGED: "converged: Newton decrement below tolerance at a positive-definite Hessian",
    Status.MAX_STEPS: "did not converge: maximum number of steps reached before the convergence test was met",
    Status.STALLED: "did not converge: no further decrease of the negative log-likelihood could be "
    "found (trust region collapsed) before the convergence test was met",
    Status.NONFINITE_START: "stopped: the negative log-likelihood or its gradient is not finite at the start",
    Status.NOT_POSITIVE_DEFINITE: "did not converge: stopped where the Hessian of the negative "
    "log-likelihood is not positive definite (a saddle, a ridge, or an optimum at infinity)",
    Status.OPEN: "open: the likelihood stays within the cut-off up to the boundary of the support",
    Status.INNER_FAILED: "an inner fit failed",
    Status.BETTER_OPTIMUM: "a higher likelihood than the fit's was found",
    Status.DIVERGING: "did not converge: an estimate runs to infinity or to a boundary of its support "
    "(its standard error is huge relative to it; res[i].issues has the diagnosis)",
    Status.STOCHASTIC: "converged within the stochastic tolerance: the full-data Newton decrement "
    "puts the SVI estimate within svi_options['tol'] standard errors of the exact maximum "
    "(no exact Newton finish was run)",
    Status.NOISE_FLOOR: "converged to working precision: at a positive-definite Hessian the "
    "negative log-likelihood stopped decreasing with the Newton decrement above the tolerance "
    "but small (λ²/2 ≤ 0.01): rounding noise of the objective dominates its last digits",
}


def succeeded(status):
    """True where a solver's code means an optimum was reached (``CONVERGED`` or, where the
    objective's rounding noise hides the last digits, ``NOISE_FLOOR``, or, for a stochastic
    fit without an exact finish, ``STOCHASTIC``); ints or arrays."""
    return (status == Status.CONVERGED) | (status == Status.NOISE_FLOOR) | (status == Status.STOCHASTIC)
