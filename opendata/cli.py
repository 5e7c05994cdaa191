"""The ``opendata`` command: parses arguments, calls one library function, prints the result.

Exit codes: 0 success; 1 a problem with the input, the spec or the release tree (the message says
which file, row, column, value and rule); 2 a usage error (unknown option, missing argument).
Heavy modules are imported inside each command so that ``opendata validate`` starts fast.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from opendata.errors import OpenDataError, ValidationFailed

console = Console(stderr=True)
out = Console()

MAX_PROBLEMS_SHOWN = 50


@contextmanager
def user_errors():
    """Turn every user-caused error into a message and exit code 1, never a traceback."""
    try:
        yield
    except ValidationFailed:
        raise
    except OpenDataError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(exc.exit_code)
    except Exception as exc:  # the disclosure engine's own errors, raised when used on its own
        from disclosure import DisclosureError

        if isinstance(exc, DisclosureError):
            console.print(f"[bold red]disclosure error:[/] {exc}", highlight=False)
            sys.exit(1)
        raise


def parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time such as 2026-12-03T09:30:00+00:00") from None
    if parsed.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no UTC offset; write e.g. 2026-12-03T09:30:00+00:00")
    return parsed


def print_problems(problems, total: int, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps({"ok": False, "total_problems": total, "problems": [p.to_dict() for p in problems]}))
        return
    table = Table(title=f"{total} problem(s) found", title_justify="left")
    for col in ("file", "row", "column", "value", "rule", "message"):
        table.add_column(col, overflow="fold")
    for p in problems[:MAX_PROBLEMS_SHOWN]:
        table.add_row(p.file, "" if p.row is None else str(p.row), p.column or "", p.value or "", p.rule, p.message)
    console.print(table)
    if total > MAX_PROBLEMS_SHOWN:
        console.print(f"… and {total - MAX_PROBLEMS_SHOWN} more; use --json to see every problem")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="opendata")
def main() -> None:
    """Turn employment-programme MI into disclosure-controlled, versioned open data.

    \b
    Typical use:
      opendata sample --out mi/ --rows 200000 --seed 1
      opendata validate specs/work-programme.yaml mi/*.csv
      opendata release  specs/work-programme.yaml mi/*.csv --out releases/

    Exit codes: 0 success, 1 bad input / spec / release refused, 2 usage error.
    """


@main.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True, help="Directory.")
@click.option("--rows", type=click.IntRange(min=1), default=200_000, show_default=True, help="Referrals to generate.")
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same bytes.")
@click.option("--start", default="2011-06", show_default=True, help="First referral month (YYYY-MM).")
@click.option("--months", type=click.IntRange(min=1), default=24, show_default=True, help="Months of referrals.")
@click.option(
    "--format",
    "formats",
    type=click.Choice(["csv", "parquet"]),
    multiple=True,
    default=("csv", "parquet"),
    show_default=True,
)
@click.option("--aggregated", is_flag=True, help="Also write the MI pre-aggregated per subcontractor and month.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing on success.")
def sample(out_dir: Path, rows: int, seed: int, start: str, months: int, formats, aggregated: bool, quiet: bool):
    """Generate realistic, clearly synthetic record-level Work Programme MI.

    \b
    Example:
      opendata sample --out mi/ --rows 200000 --seed 1
    """
    from opendata.sample import write_sample

    with user_errors():
        paths = write_sample(out_dir, rows, seed, start=start, months=months, formats=formats, aggregated=aggregated)
    if not quiet:
        for p in paths:
            out.print(f"wrote {p}")


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing on success.")
def validate(spec: Path, files: tuple[Path, ...], as_json: bool, quiet: bool):
    """Check MI files against a release spec and report every problem.

    Each problem names the file, row, column, value and rule. Nothing is written.

    \b
    Example:
      opendata validate specs/work-programme.yaml mi/*.csv --json
    """
    from opendata.spec import load_spec
    from opendata.validate import validate as run

    with user_errors():
        report = run(load_spec(spec), list(files))
    if not report.ok:
        print_problems(report.problems, report.total_problems, as_json)
        sys.exit(1)
    rows = sum(report.rows.values())
    if as_json:
        out.print_json(json.dumps({"ok": True, "rows": rows, "files": {str(k): v for k, v in report.rows.items()}}))
    elif not quiet:
        out.print(f"[green]ok[/]: {rows:,} rows in {len(files)} file(s) pass {spec}")


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("releases"),
    show_default=True,
    help="Release tree.",
)
@click.option("--version", "version", help="Version to publish (default 1.0.0 for a first release).")
@click.option("--release-time", help="Release time, ISO 8601 with offset; sets `created` so reruns are identical.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress and no summary.")
def release(spec: Path, files, out_root: Path, version, release_time, as_json: bool, quiet: bool):
    """Validate, aggregate, protect and package MI as a new immutable version.

    Writes releases/<name>/<version>/ (Frictionless Data Package) only if every step passes,
    including the disclosure audit of every table; an existing version is never overwritten.

    \b
    Example:
      opendata release specs/work-programme.yaml mi/*.csv --out releases/ \\
          --release-time 2026-12-03T09:30:00+00:00
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from opendata.release import cut_release

    when = parse_time(release_time)
    with (
        user_errors(),
        Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            disable=quiet or as_json,
            transient=True,
        ) as progress,
    ):
        task = progress.add_task("starting", total=None)
        try:
            summary = cut_release(
                spec,
                files,
                out_root,
                version=version,
                release_time=when,
                on_step=lambda s: progress.update(task, description=s),
            )
        except ValidationFailed as exc:
            progress.stop()
            print_problems(exc.problems, exc.total, as_json)
            console.print("[bold red]release refused:[/] the MI does not pass validation; nothing was written")
            sys.exit(1)
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "name": summary.name,
                    "version": summary.version,
                    "path": str(summary.path),
                    "rows_read": summary.rows_read,
                    "tables": summary.tables,
                }
            )
        )
        return
    if quiet:
        return
    table = Table(title=f"{summary.name} {summary.version}", title_justify="left")
    for col in ("table", "measure", "cells", "primary", "secondary", "rounded", "audit"):
        table.add_column(col, justify="right" if col not in ("table", "measure", "audit") else "left")
    for t in summary.tables:
        audit = "[green]pass[/]" if t["audit"]["ok"] else "[red]FAIL[/]"
        table.add_row(
            t["table"], t["measure"], *(f"{t[k]:,}" for k in ("cells", "primary", "secondary", "rounded")), audit
        )
    out.print(table)
    totals = summary.totals
    out.print(
        f"rows read {summary.rows_read:,}; cells {totals['cells']:,}, suppressed "
        f"{totals['primary'] + totals['secondary']:,} ({totals['primary']:,} primary, "
        f"{totals['secondary']:,} secondary), rounded {totals['rounded']:,}; audit passed"
    )
    out.print(f"written to {summary.path}")


if __name__ == "__main__":
    main()
