"""Disclosure rules: the single place where the release's risk appetite is written down."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from disclosure.errors import DisclosureError


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _pair(name: str, value: object) -> tuple[object, object]:
    """Accept a 2-sequence (tuple or list, e.g. from a config file) and refuse anything else."""
    if isinstance(value, str) or not isinstance(value, tuple | list) or len(value) != 2:
        raise DisclosureError(f"{name} must be a pair, got {value!r}")
    return value[0], value[1]


@dataclass(frozen=True)
class Rules:
    """Threshold rule, magnitude (concentration) rules, protection level and rounding base.

    ``protection`` is the width the attacker's feasible interval of each primary cell must reach
    (sliding protection); ``None`` means "as wide as the threshold", so a 3 cannot be told from a
    10+. ``zeros="unsafe"`` makes a zero a primary cell too (use when a zero itself discloses).
    ``rounding_base`` None or 1 disables rounding; the ONS 10-5 rule is threshold 10, base 5.
    ``singletons="protect"``: a primary cell with one contributor is known to that contributor, who
    could subtract it from a total; every other primary cell must stay protected against an
    attacker who knows all such cells (their coalition, which covers each one alone).

    Magnitude rules (Hundepool et al. 2012, sec. 4.2; Cox 1981) apply to tables of sums (turnover,
    amounts) where one large contributor could be estimated by a competitor; each is off when None:

    * ``dominance=(n, k)``: sensitive when the ``n`` largest contributions exceed ``k`` % of the total.
    * ``p_percent=p``: sensitive when the second largest contributor can estimate the largest to
      within ``p`` %: ``p/100 * x1 > T - x1 - x2``.
    * ``pq=(p, q)``: the p% rule for an intruder who already knows every contribution to within
      ``q`` % (``p < q <= 100``): ``p/100 * x1 > q/100 * (T - x1 - x2)``; ``pq=(p, 100)`` is ``p_percent=p``.
    """

    threshold: int = 10
    zeros: Literal["safe", "unsafe"] = "safe"
    protection: int | None = None
    rounding_base: int | None = None
    dominance: tuple[int, float] | None = None
    p_percent: float | None = None
    pq: tuple[float, float] | None = None
    singletons: Literal["protect", "ignore"] = "protect"

    def __post_init__(self) -> None:
        if self.singletons not in ("protect", "ignore"):
            raise DisclosureError(f"singletons must be 'protect' or 'ignore', got {self.singletons!r}")
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, int) or self.threshold < 1:
            raise DisclosureError(f"threshold must be an integer >= 1, got {self.threshold!r}")
        if self.zeros not in ("safe", "unsafe"):
            raise DisclosureError(f"zeros must be 'safe' or 'unsafe', got {self.zeros!r}")
        if self.protection is not None and (
            isinstance(self.protection, bool) or not isinstance(self.protection, int) or self.protection < 0
        ):
            raise DisclosureError(f"protection must be None or an integer >= 0, got {self.protection!r}")
        if self.rounding_base is not None and (
            isinstance(self.rounding_base, bool) or not isinstance(self.rounding_base, int) or self.rounding_base < 1
        ):
            raise DisclosureError(f"rounding_base must be None or an integer >= 1, got {self.rounding_base!r}")
        if self.dominance is not None:
            n, k = _pair("dominance (n, k)", self.dominance)
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise DisclosureError(f"dominance (n, k): n must be an integer >= 1, got {n!r}")
            if not _is_number(k) or not 0 < k < 100:  # type: ignore[operator]
                raise DisclosureError(f"dominance (n, k): k must be a percentage with 0 < k < 100, got {k!r}")
            object.__setattr__(self, "dominance", (n, float(k)))  # type: ignore[arg-type]
        if self.p_percent is not None:
            p = self.p_percent
            if not _is_number(p) or not 0 < p <= 100:
                raise DisclosureError(f"p_percent must be a percentage with 0 < p <= 100, got {p!r}")
            object.__setattr__(self, "p_percent", float(p))
        if self.pq is not None:
            p, q = _pair("pq (p, q)", self.pq)
            if not _is_number(p) or not _is_number(q):
                raise DisclosureError(f"pq (p, q) must be two numbers, got {self.pq!r}")
            if not 0 < p < q <= 100:  # type: ignore[operator]
                raise DisclosureError(
                    f"pq (p, q) needs 0 < p < q <= 100 (an intruder's prior error q must exceed p), got {self.pq!r}"
                )
            object.__setattr__(self, "pq", (float(p), float(q)))  # type: ignore[arg-type]

    @property
    def protection_width(self) -> int:
        """Required width of every primary cell's feasible interval."""
        return self.threshold if self.protection is None else self.protection

    @property
    def rounds(self) -> bool:
        """Whether published values are rounded (base > 1)."""
        return self.rounding_base is not None and self.rounding_base > 1

    @property
    def magnitude(self) -> bool:
        """Whether any magnitude rule is set (the table then needs its cells' largest contributions)."""
        return self.dominance is not None or self.p_percent is not None or self.pq is not None

    @property
    def top_n(self) -> int:
        """How many largest contributions per cell the magnitude rules read (0 when there are none)."""
        need = 0
        if self.dominance is not None:
            need = self.dominance[0]
        if self.p_percent is not None or self.pq is not None:
            need = max(need, 2)
        return need
