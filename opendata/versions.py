"""Version numbers: Semantic Versioning 2.0.0, in one place.

Every module that reads, sorts or checks a version uses these (releases, staging, diffs, the
changelog, the catalogue and ``load``); this module imports nothing heavy, so ``opendata.load``
stays quick to import for researchers.
"""

from __future__ import annotations

import re

SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


def semver_key(version: str) -> tuple:
    """SemVer 2.0.0 precedence: a pre-release sorts before its release; build metadata breaks ties only."""
    match = SEMVER.match(version)
    if not match:
        raise ValueError(f"{version!r} is not SemVer")
    major, minor, patch, pre, build = match.groups()
    if pre is None:
        pre_key: tuple = (1,)
    else:
        pre_key = (0, *((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")))
    return (int(major), int(minor), int(patch), pre_key, build or "")
