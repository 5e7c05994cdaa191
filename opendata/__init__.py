"""Disclosure-controlled, versioned open data from employment-programme MI.

``opendata.load`` and ``opendata.load_package`` are imported on first use, so ``import opendata``
stays fast and pulls in neither pandas nor pyarrow until a researcher loads something.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "LoadError",
    "UnverifiedData",
    "duckdb_connect",
    "indicator_table",
    "list_packages",
    "list_tables",
    "list_versions",
    "load",
    "load_package",
]


def __getattr__(name: str) -> Any:
    if name == "indicator_table":  # performance indicators from the published cells (opendata.compare)
        from opendata.compare import indicator_table

        return indicator_table
    if name in __all__:
        import opendata.load as module  # the module is callable: opendata.load(...) loads a table

        return module if name == "load" else getattr(module, name)
    raise AttributeError(f"module 'opendata' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public API, though it is imported lazily (``dir(opendata)`` lists it)."""
    return sorted(__all__)
