"""The errors a user can cause. The CLI turns each into a message and an exit code, never a traceback."""

from __future__ import annotations

from dataclasses import asdict, dataclass


class OpenDataError(Exception):
    """Base of every error caused by input, configuration or the state of the release tree."""

    exit_code = 1


class SpecError(OpenDataError):
    """The release spec is malformed: names the key and says what is expected."""


class InputError(OpenDataError):
    """An input file cannot be read as a table at all (encoding, truncation, not a table, empty)."""


@dataclass(frozen=True)
class Problem:
    """One bad value: where it is and which rule it breaks."""

    file: str
    row: int | None  # 1-based data row (header excluded); None for file-level problems
    column: str | None
    value: str | None
    rule: str
    message: str

    def to_dict(self) -> dict:
        return asdict(self)


class ValidationFailed(OpenDataError):
    """Input MI breaks the spec; carries every problem found."""

    def __init__(self, problems: list[Problem], total: int | None = None):
        self.problems = problems
        self.total = total if total is not None else len(problems)
        files = sorted({p.file for p in problems})
        super().__init__(f"{self.total} problem(s) in {', '.join(files)}")


class ReleaseError(OpenDataError):
    """The release cannot be written (version exists, audit failed, bad release tree)."""


class ReleaseExists(ReleaseError):
    """A published version is never overwritten."""
