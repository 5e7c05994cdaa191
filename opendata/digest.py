"""The SHA-256 of a file, in one place: the package writer, the catalogue, verification and sync all
describe files by their size and hash, and must compute both the same way."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_digest(path: str | Path) -> tuple[int, str]:
    """Size in bytes and SHA-256 (hex) of ``path``, read once in C (``hashlib.file_digest``)."""
    with Path(path).open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256")
        return handle.tell(), digest.hexdigest()
