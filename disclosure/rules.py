"""Disclosure rules: the single place where the release's risk appetite is written down."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from disclosure.errors import DisclosureError


@dataclass(frozen=True)
class Rules:
    """Threshold rule, protection level and rounding base.

    ``protection`` is the width the attacker's feasible interval of each primary cell must reach
    (sliding protection); ``None`` means "as wide as the threshold", so a 3 cannot be told from a
    10+. ``zeros="unsafe"`` makes a zero a primary cell too (use when a zero itself discloses).
    ``rounding_base`` None or 1 disables rounding; the ONS 10-5 rule is threshold 10, base 5.
    """

    threshold: int = 10
    zeros: Literal["safe", "unsafe"] = "safe"
    protection: int | None = None
    rounding_base: int | None = None

    def __post_init__(self) -> None:
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

    @property
    def protection_width(self) -> int:
        """Required width of every primary cell's feasible interval."""
        return self.threshold if self.protection is None else self.protection

    @property
    def rounds(self) -> bool:
        """Whether published values are rounded (base > 1)."""
        return self.rounding_base is not None and self.rounding_base > 1
