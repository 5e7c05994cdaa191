"""Primary suppression: which cells are sensitive in themselves."""

from __future__ import annotations

import numpy as np

from disclosure.rules import Rules


def primary_mask(frequency: np.ndarray, rules: Rules) -> np.ndarray:
    """Threshold rule on the number of contributors: ``0 < freq < k``, plus zeros when they are unsafe."""
    f = np.asarray(frequency)
    mask = (f > 0) & (f < rules.threshold)
    if rules.zeros == "unsafe":
        mask |= f == 0
    return mask


def required_widths(primary: np.ndarray, rules: Rules) -> np.ndarray:
    """Protection width each cell's attacker interval must reach (0 for non-primary cells)."""
    return np.where(np.asarray(primary, dtype=bool), float(rules.protection_width), 0.0)
