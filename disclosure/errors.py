"""Exceptions of the disclosure engine.

Everything the engine refuses is a DisclosureError, so callers can catch one type; an audit that
cannot be satisfied is the more specific AuditFailed, because it means "nothing safe to publish".
"""

from __future__ import annotations


class DisclosureError(ValueError):
    """Invalid input (hierarchy, grid, values, rules) or an unsafe result."""


class AuditFailed(DisclosureError):
    """A primary cell can be recovered, or narrowed below its protection level, by an attacker."""


class Inconsistent(DisclosureError):
    """What is published contradicts itself: no table satisfies every equation and interval."""


class SolverFailed(DisclosureError):
    """HiGHS settled nothing (not optimal, infeasible or unbounded) even after the deterministic
    retries, while bounding column ``cell`` (None: while checking feasibility)."""

    def __init__(self, message: str, cell: int | None = None) -> None:
        super().__init__(message)
        self.cell = cell


class TooLarge(DisclosureError):
    """A check would exceed its deterministic work bound (a count, never a clock): not run, and said."""
