"""Conventional rounding of published values and the interval an attacker can infer from it."""

from __future__ import annotations

import numpy as np

from disclosure.errors import DisclosureError


def _check_base(base: int) -> None:
    if isinstance(base, bool) or not isinstance(base, int | np.integer) or base < 1:
        raise DisclosureError(f"rounding base must be an integer >= 1, got {base!r}")


def round_conventional(values: np.ndarray, base: int | None) -> np.ndarray:
    """Round non-negative integers half-up to a multiple of ``base`` (0 stays 0).

    Half-up on integers: ``v`` goes up when ``v mod b >= ceil(b/2)``, i.e. ``floor((v + floor(b/2)) / b) * b``.
    """
    v = np.asarray(values, dtype=np.int64)
    if base is None or base == 1:
        return v.copy()
    _check_base(base)
    if (v < 0).any():
        raise DisclosureError("only non-negative values can be rounded")
    return (v + base // 2) // base * base


def rounding_interval(rounded: np.ndarray, base: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Integer interval of true values that round to ``rounded``: ``[r - floor(b/2), r + ceil(b/2) - 1]``, >= 0."""
    r = np.asarray(rounded, dtype=np.int64)
    if base is None or base == 1:
        return r.copy(), r.copy()
    _check_base(base)
    lower = np.maximum(r - base // 2, 0)
    upper = r + (base - base // 2) - 1
    return lower, upper
