"""One worker per expensive fixture.

``make test`` runs the suite on two workers with ``--dist loadgroup``, which hands out ungrouped tests
one by one. A module- or session-scoped fixture (a whole release, cut once for a module's tests) was
then built on both workers whenever its tests landed on both: the durations showed each 3,000-row
release fixture twice, about 220 s each. Here every test that uses such a fixture is put in the
group named by those fixtures, so one worker builds each once; the other tests still spread freely,
and a group a test names itself is kept.
"""

from __future__ import annotations

import pytest


def _shared(item: pytest.Item) -> list[str]:
    """The suite's own module-, package- or session-scoped fixtures ``item`` uses (pytest's own, such
    as ``tmp_path_factory``, are cheap and left out: their ``baseid`` is empty)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    return sorted(
        f"{defs[-1].baseid}::{name}"
        for name in info.names_closure
        if (defs := info.name2fixturedefs.get(name))
        and defs[-1].baseid
        and defs[-1].scope in ("module", "package", "session")
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that share a fixture, directly or through another test, form one group (union-find)."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    uses = {item.nodeid: _shared(item) for item in items if not item.get_closest_marker("xdist_group")}
    for fixtures in uses.values():
        for other in fixtures[1:]:
            a, b = root(fixtures[0]), root(other)
            parent[max(a, b)] = min(a, b)
    for item in items:
        if fixtures := uses.get(item.nodeid):
            item.add_marker(pytest.mark.xdist_group(root(fixtures[0])))
