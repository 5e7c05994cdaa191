"""What every secondary suppression method returns (``Suppression``), in its own home so the methods
(``hypercube``, ``optimal``, ``secondary``) and their callers share it without depending on each other."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from disclosure.attacker import Intervals

CANNOT_PROTECT = (
    "secondary suppression cannot protect the table: every cell that may be hidden already is "
    "(the others are must-publish, or were published before)"
)


@dataclass
class Suppression:
    """Final pattern plus the audit that proved it: ``proof`` is "exact" (attacker LPs) or
    "certificates" (verified moves, LPs for the cells no move covers). ``insider_unverified``
    lists the primary cells proven safe against outsiders only (see ``hypercube``). ``moves`` (fast
    method) holds the certificates still valid for the final pattern, as rows of ``±1`` over cells
    (``attacker.certified_intervals`` checks them)."""

    suppressed: np.ndarray
    intervals: Intervals
    rounds: int
    proof: str = "exact"
    insider_unverified: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    moves: sp.csr_matrix | None = None

    def facts(self) -> dict[str, object]:
        """What is known of the pattern's optimality, for the record (``disclosure.optimal`` overrides):
        a heuristic pattern proves nothing about how many cells a better one would hide."""
        return {"optimal": False}
