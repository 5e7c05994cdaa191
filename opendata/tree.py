"""Where the versions are in a release tree (the public tree or a staging area): ``<root>/<name>/<version>/``
with a ``datapackage.json``. One scan, so every stage agrees on what counts as a version: a directory
named by SemVer that holds a descriptor; dot-directories (temporaries, staging notes) never count.
"""

from __future__ import annotations

from pathlib import Path

from opendata.descriptor import DESCRIPTOR_FILE
from opendata.versions import SEMVER, semver_key


def packages(root: str | Path) -> list[str]:
    """Names of the series in a tree (directories not starting with a dot), sorted; [] if there is no tree."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def versions(series: str | Path) -> list[str]:
    """Version numbers of one series, lowest first by SemVer precedence; [] if the series does not exist."""
    series = Path(series)
    if not series.is_dir():
        return []
    found = [p.name for p in series.iterdir() if SEMVER.match(p.name) and (p / DESCRIPTOR_FILE).is_file()]
    return sorted(found, key=semver_key)
