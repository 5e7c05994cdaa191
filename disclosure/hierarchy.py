"""Code hierarchies of one dimension (Total > CPA > prime contract > subcontractor, or flat).

The hierarchy is what makes a table additive: every non-leaf code equals the sum of its children,
and those equations are exactly what an attacker uses to recover suppressed cells.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from disclosure.errors import DisclosureError


@dataclass(frozen=True)
class Hierarchy:
    """A rooted tree of string codes; ``codes`` lists the total first, then depth-first.

    Children keep the order in which they were given (deterministic for dicts and lists), or are
    sorted when ``sort=True``. Build with :meth:`flat` or :meth:`from_parents`. ``headline_depth``:
    how deep its codes are still headline breakdowns (``Grid.headline``): 1 for areas, where a
    region is headline and a district is not; 2 for quarters with their months, where a national
    month is as much a headline as a national quarter. ``period``: a time dimension, along which a
    breakdown keeps a headline a headline (a CPA's month is as much a headline as the CPA's total).
    """

    name: str
    total: str
    edges: tuple[tuple[str, str], ...]  # (code, parent), total excluded, in given order
    sort: bool = False
    headline_depth: int = 1
    period: bool = False
    codes: tuple[str, ...] = field(init=False)
    _parent: dict[str, str] = field(init=False, repr=False, compare=False, hash=False)
    _children: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False, hash=False)
    _depth: dict[str, int] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.total, str) or not self.total:
            raise DisclosureError(f"hierarchy {self.name!r}: total must be a non-empty string")
        parent: dict[str, str] = {}
        for code, par in self.edges:
            if not isinstance(code, str) or not code:
                raise DisclosureError(f"hierarchy {self.name!r}: codes must be non-empty strings, got {code!r}")
            if not isinstance(par, str):
                raise DisclosureError(f"hierarchy {self.name!r}: parent of {code!r} must be a string, got {par!r}")
            if code == self.total:
                raise DisclosureError(f"hierarchy {self.name!r}: the total {code!r} cannot have a parent")
            if code in parent:
                raise DisclosureError(f"hierarchy {self.name!r}: code {code!r} is given more than once")
            parent[code] = par
        known = set(parent) | {self.total}
        unknown = sorted({p for p in parent.values() if p not in known})
        if unknown:
            raise DisclosureError(f"hierarchy {self.name!r}: unknown parent code(s) {unknown}")
        children: dict[str, list[str]] = {c: [] for c in [self.total, *parent]}
        for code, par in parent.items():
            children[par].append(code)
        if self.sort:
            for kids in children.values():
                kids.sort()
        codes: list[str] = []
        depth: dict[str, int] = {}
        stack: list[tuple[str, int]] = [(self.total, 0)]
        while stack:
            code, d = stack.pop()
            codes.append(code)
            depth[code] = d
            stack.extend((c, d + 1) for c in reversed(children[code]))
        unreachable = sorted(c for c in parent if c not in depth)
        if unreachable:
            raise DisclosureError(
                f"hierarchy {self.name!r}: code(s) {unreachable} do not lead up to the total {self.total!r} (cycle)"
            )
        object.__setattr__(self, "codes", tuple(codes))
        object.__setattr__(self, "_parent", parent)
        object.__setattr__(self, "_children", {c: tuple(k) for c, k in children.items()})
        object.__setattr__(self, "_depth", depth)

    @classmethod
    def flat(cls, name: str, codes: Iterable[str], total: str = "Total", sort: bool = False) -> Hierarchy:
        """One level under the total, e.g. months."""
        return cls(name, total, tuple((c, total) for c in codes), sort)

    @classmethod
    def from_parents(
        cls,
        name: str,
        parents: Mapping[str, str | None],
        total: str = "Total",
        sort: bool = False,
        headline_depth: int = 1,
        period: bool = False,
    ) -> Hierarchy:
        """From a ``code -> parent`` mapping; the total may appear with parent None/'' and is then ignored."""
        edges: list[tuple[str, str]] = []
        for code, par in parents.items():
            if code == total and (par is None or par == ""):
                continue
            if par is None:
                raise DisclosureError(f"hierarchy {name!r}: code {code!r} has no parent and is not the total")
            edges.append((code, par))
        return cls(name, total, tuple(edges), sort, headline_depth, period)

    def _check(self, code: str) -> None:
        if code not in self._depth:
            raise KeyError(f"hierarchy {self.name!r} has no code {code!r}")

    def children(self, code: str) -> tuple[str, ...]:
        self._check(code)
        return self._children[code]

    def parent(self, code: str) -> str | None:
        self._check(code)
        return self._parent.get(code)

    def is_leaf(self, code: str) -> bool:
        return not self.children(code)

    def depth(self, code: str) -> int:
        self._check(code)
        return self._depth[code]

    @property
    def leaves(self) -> tuple[str, ...]:
        return tuple(c for c in self.codes if not self._children[c])

    @property
    def max_depth(self) -> int:
        return max(self._depth.values())

    def __len__(self) -> int:
        return len(self.codes)

    def __contains__(self, code: object) -> bool:
        return code in self._depth
