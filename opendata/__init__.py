"""Disclosure-controlled, versioned open data from employment-programme MI.

``opendata.load`` and ``opendata.load_package`` are imported on first use, so ``import opendata``
stays fast and pulls in neither pandas nor pyarrow until a researcher loads something.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load", "load_package"]


def __getattr__(name: str) -> Any:
    if name in ("load", "load_package"):
        import opendata.load as module  # the module is callable: opendata.load(...) loads a table

        return module if name == "load" else module.load_package
    raise AttributeError(f"module 'opendata' has no attribute {name!r}")
