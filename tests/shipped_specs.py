"""The shipped specs, and copies of them without the intruders for tests whose subject is not them.

The shipped specs protect every pattern against each subcontractor, prime contract and CPA knowing
all its own cells (``disclosure.intruders``); that check is most of the time of a release. Tests
that cut releases to check something else (embargo, packages, pages, spreadsheets, series) cut them
with ``OUTSIDERS``: the same spec, code lists and relations, less the ``intruders`` line. The tests
of the intruders themselves (``tests/test_attack_classes.py``) and of the specs cut with ``SHIPPED``.

The copy sits in the system's temporary directory under a name derived from the content of
``specs/``, so an edit to a spec or code list makes a new copy, and two test workers creating it at
once both end with the same complete directory (each builds its own, then renames it into place).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
SHIPPED = SPECS / "work-programme.yaml"
SHIPPED_AGGREGATED = SPECS / "work-programme-aggregated.yaml"
SHIPPED_ANNUAL = SPECS / "work-programme-annual.yaml"  # the demo's: subcontractors by financial year
INTRUDERS_LINE = "  intruders: [subcontractor, prime_contract, cpa]\n"


def _without_intruders() -> Path:
    """``specs/`` copied with the intruders line taken out of the standard specs."""
    digest = hashlib.sha256()
    for path in sorted(p for p in SPECS.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(SPECS)).encode() + b"\0" + path.read_bytes() + b"\0")
    target = Path(tempfile.gettempdir()) / f"opendata-test-specs-{digest.hexdigest()[:16]}"
    if target.is_dir():
        return target
    build = Path(tempfile.mkdtemp(prefix=target.name + "-", dir=target.parent))
    shutil.copytree(SPECS, build, dirs_exist_ok=True)
    for spec in (SHIPPED, SHIPPED_AGGREGATED, SHIPPED_ANNUAL):
        text = spec.read_text()
        assert text.count(INTRUDERS_LINE) == 1, f"{spec} no longer has the line {INTRUDERS_LINE!r}"
        (build / spec.name).write_text(text.replace(INTRUDERS_LINE, ""))
    try:
        os.rename(build, target)
    except OSError:  # another worker was first: its copy is the same
        shutil.rmtree(build)
    return target


OUTSIDERS = _without_intruders() / SHIPPED.name
OUTSIDERS_AGGREGATED = OUTSIDERS.parent / SHIPPED_AGGREGATED.name
OUTSIDERS_ANNUAL = OUTSIDERS.parent / SHIPPED_ANNUAL.name
