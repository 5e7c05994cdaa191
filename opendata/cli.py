"""The ``opendata`` command: parses arguments, calls one library function, prints the result.

Exit codes: 0 success; 1 a problem with the input, the spec or the release tree (the message says
which file, row, column, value and rule); 2 a usage error (unknown option, missing argument).
Heavy modules are imported inside each command so that ``opendata validate`` starts fast.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from opendata.descriptor import DESCRIPTOR_FILE
from opendata.descriptor import parse_time as descriptor_time
from opendata.errors import OpenDataError, ValidationFailed

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

MAX_PROBLEMS_SHOWN = 50


def public_option(name: str):
    """``--out``: the public release tree, shared by every command that reads or writes it."""
    return click.option(
        "--out",
        name,
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("releases"),
        show_default=True,
        help="Public release tree.",
    )


staging_option = click.option(
    "--staging", type=click.Path(file_okay=False, path_type=Path), help="Staging area [default: staging/ beside --out]."
)


def renamed(old: str, new: str, what: str):
    """A hidden option for a spelling that changed: refused with the new one named (one name per
    thing across commands: ``--out`` the public tree, ``--key`` the private key, ``--trust`` the public key)."""

    def refuse(ctx: click.Context, param: click.Parameter, value: object) -> None:
        if value is not None:
            raise click.UsageError(f"{old} is now {new} ({what})", ctx)

    name = "renamed_" + old.strip("-").replace("-", "_")  # its own name: never the new option's value
    return click.option(old, name, hidden=True, expose_value=False, callback=refuse, is_eager=True)


def staged_version(command):
    """NAME VERSION of a staged release, and where the trees are (``access``, ``unstage``, ``reschedule``)."""
    for decorator in reversed(
        (click.argument("name"), click.argument("version"), public_option("public"), staging_option)
    ):
        command = decorator(command)
    return command


@contextmanager
def user_errors():
    """Turn every user-caused error into a message and exit code 1, never a traceback."""
    try:
        yield
    except ValidationFailed:
        raise
    except OpenDataError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(exc.exit_code)
    except Exception as exc:  # the disclosure engine's own errors, raised when used on its own
        from disclosure import DisclosureError

        if isinstance(exc, DisclosureError):
            console.print(f"[bold red]disclosure error:[/] {escape(str(exc))}", highlight=False)
            sys.exit(1)
        raise


def parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return descriptor_time(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


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


class _Process(click.Group):
    """The command group, which ends its process without tearing down native thread pools.

    Arrow's and DuckDB's worker threads can still be alive when the interpreter destroys their
    pools at exit, and ``std::terminate`` then aborts a command that has finished (exit -6,
    "terminate called without an active exception", intermittent under load; apache/arrow#34314).
    Every output is written and closed by then (temp directories renamed or removed, files closed by
    their ``with``), so the process flushes its streams and leaves with the command's exit code."""

    def main(self, *args, **kwargs):  # type: ignore[override]
        if not kwargs.get("standalone_mode", True):  # called as a library: return to the caller
            return super().main(*args, **kwargs)
        try:
            super().main(*args, **kwargs)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


@click.group(cls=_Process, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="opendata")
def main() -> None:
    """Turn employment-programme MI into disclosure-controlled, versioned open data.

    \b
    Typical use:
      opendata sample --out mi/ --rows 200000 --seed 1
      opendata validate specs/work-programme-annual.yaml mi/*.csv
      opendata release  specs/work-programme-annual.yaml mi/*.csv --out releases/ --calendar specs/calendar.yaml
      opendata publish  --out releases/

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
@click.option("--journey", is_flag=True, help="Also write each participant's journey events (for CSS measures).")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing on success.")
def sample(
    out_dir: Path, rows: int, seed: int, start: str, months: int, formats, aggregated: bool, journey: bool, quiet: bool
):
    """Generate realistic, clearly synthetic record-level Work Programme MI.

    \b
    Example:
      opendata sample --out mi/ --rows 200000 --seed 1
    """
    from opendata.sample import write_sample

    with user_errors():
        options = {"start": start, "months": months, "formats": formats, "aggregated": aggregated}
        paths = write_sample(out_dir, rows, seed, **options, with_journey=journey)
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
@public_option("out_root")
@staging_option
@click.option(
    "--calendar",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Release calendar: sets the release time and the cut-off at the latest official statistics.",
)
@click.option("--version", "version", help="Version to publish [default: worked out from the diff; 1.0.0 first].")
@click.option("--release-time", help="Release time, ISO 8601 with offset [default: the next one in --calendar].")
@click.option(
    "--mi-ahead",
    is_flag=True,
    help="Also publish the months after the cut-off as separate provisional [p] MI tables (rec 1c).",
)
@click.option("--unscheduled", is_flag=True, help="A release at a time not in --calendar (needs --reason).")
@click.option("--late", is_flag=True, help="Stage a release whose time has already passed (needs --reason).")
@click.option("--reason", help="Why: published with the release (and with its corrections, if any).")
@click.option("--dry-run", is_flag=True, help="Do everything but write: print what the release would suppress.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Processes protecting the measures in parallel [default: every core; small releases use one].",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Run the protection on a Dask distributed cluster (e.g. tcp://host:8786) instead of local processes.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress and no summary.")
def release(
    spec: Path,
    files,
    out_root: Path,
    staging,
    calendar,
    version,
    release_time,
    mi_ahead: bool,
    unscheduled: bool,
    late: bool,
    reason,
    dry_run: bool,
    workers,
    scheduler,
    as_json: bool,
    quiet: bool,
):
    """Validate, aggregate, protect and stage MI as a new immutable version.

    The package is written to the staging area (never the public tree) stamped with its release
    time; `opendata publish` makes it public when that time comes. Nothing is written unless every
    step passes, including the disclosure audit of every table; no version is ever overwritten.
    With --calendar, the release time must be one of the dataset's entries (else --unscheduled),
    and a time already past is refused (else --late); both need --reason and say so in the package.

    \b
    Example:
      opendata release specs/work-programme.yaml mi/*.csv --out releases/ \\
          --calendar specs/calendar.yaml
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
                staging=staging,
                version=version,
                release_time=when,
                calendar=calendar,
                mi_ahead=mi_ahead,
                unscheduled=unscheduled,
                late=late,
                reason=reason,
                dry_run=dry_run,
                workers=workers,
                scheduler=scheduler,
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
                    "release_time": summary.release_at.isoformat(),
                    "bump": summary.bump,
                    "dry_run": summary.dry_run,
                    "cutoff": summary.cutoff,
                    "held_back": summary.held_back,
                    "rows_read": summary.rows_read,
                    "tables": summary.tables,
                    "public_audit": summary.public_audit and summary.public_audit.to_dict(),
                }
            )
        )
        return
    if quiet:
        return
    table = Table(title=f"{summary.name} {summary.version}", title_justify="left")
    for col in ("table", "measure", "cells", "primary", "secondary", "value hidden", "rounded", "audit"):
        table.add_column(col, justify="left" if col in ("table", "measure", "audit") else "right")
    for t in summary.tables:
        audit = "[green]pass[/]" if t["audit"]["ok"] else "[red]FAIL[/]"
        counts = [f"{t[k]:,}" for k in ("cells", "primary", "secondary", "rounded")]
        loss = t.get("loss") or {}
        share = loss.get("secondary_value", 0) / max(loss.get("total_value", 0), 1)
        hidden = f"{loss.get('secondary_value', 0):,} ({share:.1%})"
        table.add_row(t["table"], t["measure"], *counts[:3], hidden, counts[3], audit)
    out.print(table)
    totals = summary.totals
    out.print(
        f"rows read {summary.rows_read:,}; cells {totals['cells']:,}, suppressed "
        f"{totals['primary'] + totals['secondary']:,} ({totals['primary']:,} primary, "
        f"{totals['secondary']:,} secondary), rounded {totals['rounded']:,}; audit passed"
    )
    held = {m: v for m, v in summary.held_back.items() if v}
    detail = ", ".join(f"{m} {sum(v.values()):,} ({min(v)} to {max(v)})" for m, v in held.items()) or "nothing"
    if summary.cutoff:
        out.print(f"cut-off: data up to {summary.cutoff}; held back: {detail}")
    elif held:  # months after the last whole quarter or year of a table: the next release shows them
        out.print(f"held back until their period is whole: {detail}")
    for t in summary.tables:
        levels = "; ".join(f"{k} {v['hidden']}/{v['cells']}" for k, v in (t.get("hidden_by_level") or {}).items())
        out.print(f"{t['table']}, {t['measure']}: hidden by level: {levels}", highlight=False)
    out.print("value hidden: the true value of the secondary cells and its share of all cells (not published)")
    kind = f"{summary.bump} release" if summary.bump else "first release"
    if summary.dry_run:
        out.print(f"dry run: nothing written; would stage {summary.path} ({kind})")
        return
    public = summary.public_audit
    if public is not None:
        out.print(
            f"public audit (no MI, as a third party runs `opendata audit` on this version): passed, "
            f"{public.checked:,} suppressed cells checked",
            highlight=False,
        )
    out.print(f"staged at {summary.path} for release at {summary.release_at:%Y-%m-%d %H:%M}Z ({kind})")


@main.command()
@public_option("public")
@staging_option
@click.option("--key", type=click.Path(dir_okay=False, path_type=Path), help="Ed25519 private key to sign with.")
@click.option("--base-url", help="Absolute URL the public tree is served at (for the catalogue's links).")
@click.option("--dry-run", is_flag=True, help="Only report what would be published.")
@click.option("--now", "now_text", help="Pretend time, ISO 8601; allowed only with --dry-run.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing on success.")
def publish(public: Path, staging, key, base_url, dry_run: bool, now_text, quiet: bool):
    """Publish every staged release whose release time has come, and rebuild the catalogue.

    Uses the real UTC clock; a staged release is never published a second early. The catalogue
    (catalog.json, DCAT catalog.jsonld, feed.atom) is regenerated and signed when --key is given.

    \b
    Example:
      opendata publish --out releases/ --key publisher.key
    """
    from opendata.embargo import default_staging
    from opendata.embargo import publish as run

    if now_text and not dry_run:
        raise click.UsageError("--now is only for dry runs: publishing always uses the real clock")
    now = parse_time(now_text) or datetime.now(UTC)
    with user_errors():
        signer = None
        if key:
            from opendata.signing import load_private_key

            signer = load_private_key(key)
        summary = run(
            staging or default_staging(public), public, now, signer=signer, base_url=base_url, dry_run=dry_run
        )
    if quiet:
        return
    verb = "would publish" if dry_run else "published"
    for s in summary.published:
        out.print(f"{verb} {s.name} {s.version} (release time {s.release_at:%Y-%m-%d %H:%M}Z)")
    for s in summary.waiting:
        out.print(f"embargoed until {s.release_at:%Y-%m-%d %H:%M}Z: {s.name} {s.version}")
    if not summary.published and not summary.waiting:
        out.print("nothing staged")


@main.command()
@staged_version
@click.option("--who", required=True, help="The person or role named for pre-release access.")
def access(name: str, version: str, who: str, public: Path, staging):
    """Grant pre-release access to a staged release (named people only, at most 24 hours early).

    Every request, granted or refused, is appended to the release's access log.

    \b
    Example:
      opendata access work-programme-subcontractor-mi 1.1.0 --who "Minister for Employment"
    """
    from opendata.embargo import default_staging, grant_pre_release_access

    with user_errors():
        path = grant_pre_release_access(
            staging or default_staging(public), name, version, who, datetime.now(UTC), public
        )
    out.print(f"access granted to {who}: {path}")


@main.command()
@staged_version
@click.option("--reason", required=True, help="Why it is withdrawn (logged beside the release).")
def unstage(name: str, version: str, reason: str, public: Path, staging):
    """Withdraw a staged release before it is public (kept under staging/NAME/.withdrawn/, logged).

    \b
    Example:
      opendata unstage work-programme-subcontractor-mi 1.1.0 --reason "Wrong MI extract"
    """
    from opendata.embargo import default_staging
    from opendata.embargo import unstage as run

    with user_errors():
        kept = run(staging or default_staging(public), name, version, reason, datetime.now(UTC), public)
    out.print(f"withdrew {name} {version}; kept at {kept}")


@main.command()
@staged_version
@click.option("--to", "to_text", required=True, help="New release time, ISO 8601 with offset.")
@click.option("--reason", required=True, help="Why it moves (logged, and stated in the package).")
@click.option("--calendar", type=click.Path(dir_okay=False, path_type=Path), help="Release calendar to check against.")
@click.option("--unscheduled", is_flag=True, help="The new time is not in the calendar (a non-standard release).")
def reschedule(name: str, version: str, to_text: str, reason: str, calendar, unscheduled: bool, public: Path, staging):
    """Move a staged release to another release time (same rules as `release`; the cut-off must not change).

    \b
    Example:
      opendata reschedule work-programme-subcontractor-mi 1.1.0 --to 2027-01-14T09:30:00+00:00 \\
          --calendar specs/calendar.yaml --reason "Moved with the official statistics"
    """
    from opendata.calendar import load_calendar
    from opendata.embargo import default_staging
    from opendata.embargo import reschedule as run

    to = parse_time(to_text)
    with user_errors():
        staged = run(
            staging or default_staging(public),
            name,
            version,
            to,
            reason,
            datetime.now(UTC),
            calendar=load_calendar(calendar) if calendar else None,
            unscheduled=unscheduled,
            public=public,
        )
    out.print(f"{name} {version} now releases at {staged.release_at:%Y-%m-%d %H:%M}Z")


@main.group(invoke_without_command=True)
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("specs/calendar.yaml"),
    show_default=True,
    help="Release calendar.",
)
@click.option("--dataset", help="Only this dataset.")
@click.pass_context
def calendar(ctx: click.Context, path: Path, dataset):
    """List upcoming and past releases from the release calendar.

    \b
    Example:
      opendata calendar --dataset work-programme-subcontractor-mi
      opendata calendar check
    """
    ctx.obj = path
    if ctx.invoked_subcommand is not None:
        return
    from opendata.calendar import load_calendar, past, upcoming

    now = datetime.now(UTC)
    with user_errors():
        cal = load_calendar(path)
        if dataset:
            cal.dataset(dataset)
        rows = [("past", r) for r in past(cal, now, dataset)] + [("upcoming", r) for r in upcoming(cal, now, dataset)]
    table = Table(title=f"release calendar ({path})", title_justify="left")
    for col in ("", "dataset", "id", "release (London)", "data up to", "kind", "status"):
        table.add_column(col)
    for when, r in rows:
        table.add_row(when, r.dataset, r.id, f"{r.release_at:%a %Y-%m-%d %H:%M}", str(r.covers), r.kind, r.status)
    out.print(table)


@calendar.command("check")
@click.pass_obj
def calendar_check(path: Path):
    """Flag releases that break orderly-release rules.

    Short notice (under 4 weeks), weekends, England and Wales bank holidays, non-standard times
    without a reason, and broken revision links. Exit code 1 if anything is found.

    \b
    Example:
      opendata calendar --file specs/calendar.yaml check
    """
    from opendata.calendar import check_calendar, load_calendar, london_today

    with user_errors():
        problems = check_calendar(load_calendar(path), today=london_today())
    if not problems:
        out.print(f"[green]ok[/]: {path} follows the orderly-release rules")
        return
    table = Table(title=f"{len(problems)} problem(s) in {path}", title_justify="left")
    for col in ("dataset", "release", "field", "value", "rule", "message"):
        table.add_column(col, overflow="fold")
    for p in problems:
        table.add_row(p.dataset, p.release, p.field, p.value, p.rule, p.message)
    console.print(table)
    sys.exit(1)


@main.command("diff")
@click.argument("old")
@click.argument("new")
@public_option("root")
@renamed("--root", "--out", "the public release tree, as in every command")
@click.option("--json", "as_json", is_flag=True, help="Print the diff as JSON.")
@click.option("--limit", type=int, default=10, show_default=True, help="Changes listed per kind.")
def diff_command(old: str, new: str, root: Path, as_json: bool, limit: int):
    """Show what changed between two versions: schema, rows, values and suppression.

    \b
    Example:
      opendata diff work-programme-subcontractor-mi@1.0.0 work-programme-subcontractor-mi@1.1.0
    """
    from opendata.content import PackageContent
    from opendata.diff import diff as run
    from opendata.diff import render_text, resolve

    with user_errors():
        d = run(PackageContent.from_path(resolve(old, root)), PackageContent.from_path(resolve(new, root)))
    if as_json:
        out.print_json(d.to_json(limit=limit))
    else:
        out.print(render_text(d, limit=limit), highlight=False, markup=False)


@main.group()
def keys():
    """Publisher signing keys (Ed25519)."""


@keys.command("generate")
@click.option(
    "--private",
    "private",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("publisher.key"),
    show_default=True,
)
@click.option(
    "--public",
    "public",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("publisher.pub"),
    show_default=True,
)
def keys_generate(private: Path, public: Path):
    """Make a publisher key pair; refuses to overwrite existing files.

    \b
    Example:
      opendata keys generate --private publisher.key --public publisher.pub
    """
    from opendata.signing import generate_keys

    with user_errors():
        made = generate_keys(private, public)
    out.print(f"private key {made.private_path} (keep it secret), public key {made.public_path}")
    out.print(f"fingerprint {made.fingerprint}")


@main.command("list")
@click.argument("source", default="releases")
@click.argument("name", required=False)
@click.argument("version", required=False)
@click.option(
    "--trust",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Publisher public key: the catalogue and descriptor must verify with it (default: $OPENDATA_TRUST).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def list_(source: str, name: str | None, version: str | None, trust: Path | None, as_json: bool):
    """List the packages of a release tree, the versions of one package, or the tables of one version.

    SOURCE is a local tree or the http(s) URL of its root.

    \b
    Example:
      opendata list releases/
      opendata list http://host:8000/ work-programme-subcontractor-mi
      opendata list releases/ work-programme-subcontractor-mi 1.0.0
    """
    from opendata.load import list_packages, list_tables, list_versions

    with user_errors():
        if name is None:
            rows = list_packages(source, trust=trust)
        elif version is None:
            rows = list_versions(name, source, trust=trust)
        else:
            rows = list_tables(name, version, source, trust=trust)
    if as_json:
        out.print_json(rows.to_json(orient="records"))
    else:
        out.print(rows.to_string(index=False), markup=False, highlight=False)


@main.command()
@click.argument("source")
@click.option("--entity", required=True, help="The row to compare, e.g. a subcontractor code (S0001).")
@click.option(
    "--indicator", "indicator_text", required=True,
    help="An indicator the package defines (e.g. job-outcomes-per-referral), or NUMERATOR/DENOMINATOR measures.",
)  # fmt: skip
@click.option(
    "--table",
    help="The published table [default: the first by month holding the indicator's measures, e.g. the cohort table "
    "for a cohort indicator].",
)
@click.option("--period", default="Total", show_default=True, help="The month, or Total for the whole period.")
@click.option("--benchmark", "against", help="The row to compare with [default: the table's total, the programme].")
@click.option("--kind", type=click.Choice(["proportion", "rate"]), default="proportion", show_default=True,
              help="For NUMERATOR/DENOMINATOR.")  # fmt: skip
@click.option("--per", type=click.IntRange(min=1), default=1, show_default=True, help="Rates: per this many.")
@click.option(
    "--polarity", type=click.Choice(["higher", "lower", "none"]), default="higher", show_default=True,
    help="For NUMERATOR/DENOMINATOR: which direction is better.",
)  # fmt: skip
@click.option("--exact", is_flag=True, help="Clopper-Pearson intervals for proportions instead of Wilson.")
@click.option(
    "--overdispersion", type=click.Choice(["none", "phi", "re"]), default="none", show_default=True,
    help="Widen the funnel for variation beyond chance among peers: phi (multiplicative) or re (additive "
    "random effects), from 10%-winsorised z-scores (Spiegelhalter 2005).",
)  # fmt: skip
@click.option(
    "--with", "others", multiple=True,
    help="Another package (name, directory or URL) whose providers join the peers when its indicator "
    "means the same; repeatable. Refused, saying what differs, when it does not.",
)  # fmt: skip
@click.option(
    "--charts", type=click.Path(file_okay=False, path_type=Path), help="Write the funnel plot and trend here."
)
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default="releases", show_default=True)
@click.option("--trust", type=click.Path(dir_okay=False, path_type=Path), help="Publisher public key.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def compare(
    source: str, entity: str, indicator_text: str, table: str | None, period: str, against: str | None, kind: str,
    per: int, polarity: str, exact: bool, overdispersion: str, others: tuple[str, ...], charts: Path | None,
    root: Path, trust: Path | None, as_json: bool,
):  # fmt: skip
    """Compare one provider's indicator with the programme's, from a published package alone.

    Intervals at 95% and 99.8% (Wilson for proportions, exact Poisson or Byar's for rates), widened
    for the rounding of the published counts; significance by the funnel-plot method; rank band
    among the rows at the same level. Suppressed inputs give [c], never a guess.

    \b
    Example:
      opendata compare work-programme-subcontractor-mi --entity S0001 --indicator job_outcomes/referrals \\
          --charts charts/
    """
    from opendata.compare import compare as run
    from opendata.compare import write_charts
    from opendata.indicators import Indicator

    with user_errors():
        num, _, den = (part.strip() for part in indicator_text.partition("/"))
        wanted = Indicator(num, den, kind, per, polarity) if num and den else indicator_text  # else: a name
        result = run(
            source, entity, wanted, table=table, period=period, against=against, exact=exact,
            overdispersion=overdispersion, others=others, root=root, trust=trust,
        )  # fmt: skip
        indicator = result.indicator
        written = write_charts(result, charts) if charts else []
    summary = result.summary()
    if as_json:
        out.print_json(json.dumps(summary | {"charts": [str(p) for p in written]}))
        return
    scale, unit = (100, "%") if indicator.kind == "proportion" else (1, f" per {indicator.per:,}")
    head = f"{indicator.name} of {entity}, {period}"
    if summary["status"]:
        out.print(f"{head}: [c] (suppressed: a count it needs is hidden)", highlight=False, markup=False)
    else:
        out.print(
            f"{head}: {summary['value'] * scale:.1f}{unit} ({summary['numerator']:,} of {summary['denominator']:,}); "
            f"95% {summary['lower_95'] * scale:.1f} to {summary['upper_95'] * scale:.1f}, "
            f"99.8% {summary['lower_99.8'] * scale:.1f} to {summary['upper_99.8'] * scale:.1f}",
            highlight=False,
            markup=False,
        )
        out.print(
            f"against {summary['benchmark']['entity']} ({summary['benchmark']['value'] * scale:.1f}{unit}): "
            f"{summary['compared_95']} at 95%, {summary['compared_99.8']} at 99.8%; rank band "
            f"{summary['rank_band']} of 5 among {summary['peers']} peers shown",
            highlight=False,
            markup=False,
        )
    spread = summary["overdispersion"]
    if spread.get("phi") is not None:
        out.print(
            f"overdispersion among peers: phi {spread['phi']:.2f}, tau2 {spread['tau2']:.3g} "
            f"({'not adjusted' if overdispersion == 'none' else 'funnel widened: ' + overdispersion}); "
            f"trend over the last 5 months: {summary['trend_marker']}",
            highlight=False,
            markup=False,
        )
    for note in summary["notes"]:
        out.print(f"note: {note}", highlight=False, markup=False)
    for path in written:
        out.print(f"wrote {path}", highlight=False, markup=False)


@main.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--trust", "key", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Publisher public key."
)
@renamed("--key", "--trust", "the publisher's public key; --key is the private key, in publish")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify(path: Path, key: Path, as_json: bool):
    """Check signatures and file hashes of a package version or a whole release tree.

    \b
    Example:
      opendata verify releases/ --trust publisher.pub
    """
    from opendata.verify import verify_package, verify_tree

    with user_errors():
        run = verify_package if (path / DESCRIPTOR_FILE).is_file() else verify_tree
        report = run(path, key)
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
    else:
        out.print(f"[green]verified[/]: {path}")


@main.command()
@click.argument("cells", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--dim",
    "dims",
    multiple=True,
    required=True,
    help="A dimension column, or name=hierarchy.csv (columns code,parent); repeat for each dimension.",
)
@click.option("--value", required=True, help="The count column.")
@click.option(
    "--threshold",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Counts 1 to threshold-1 are primary.",
)
@click.option("--zeros", type=click.Choice(["safe", "unsafe"]), default="safe", show_default=True)
@click.option("--protection", type=click.IntRange(min=1), help="Required interval width [default: threshold].")
@click.option("--round", "rounding_base", type=click.IntRange(min=1), help="Round published counts to this base.")
@click.option("--total", default="Total", show_default=True, help="The total code of every dimension.")
@click.option(
    "--method",
    type=click.Choice(["auto", "fast", "optimal", "heuristic"]),
    default="auto",
    show_default=True,
    help="fast: certified hypercubes (large tables); optimal: MILP; auto: optimal up to 2,000 cells.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Every cell with its true value and status (for the statistician).",
)
@click.option(
    "--public", type=click.Path(dir_okay=False, path_type=Path), help="The publishable view: suppressed cells as [c]."
)
@click.option("--contributor", help="Unit column: CELLS.csv then holds one row per contribution (magnitude tables).")
@click.option("--dominance", metavar="N,K", help="(n,k) dominance: the N largest contributors exceed K% of the cell.")
@click.option(
    "--p-percent", type=click.FloatRange(min=0, min_open=True, max=100), help="p% rule (needs --contributor)."
)
@click.option(
    "--singletons",
    type=click.Choice(["protect", "ignore"]),
    default="protect",
    show_default=True,
    help="protect: every primary also safe from each single contributor, who knows its own cell; "
    "ignore: outsiders only (as sdcTable and tau-Argus do by default).",
)
@click.option(
    "--cost",
    type=click.Choice(["value", "cells", "log"]),
    help="What secondary suppression minimises: hidden value, hidden cells, or 1+ln(1+value) "
    "[default: cells for fast, value for optimal].",
)
@click.option(
    "--publish",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CSV of cells that must be published (a column per dimension; the total code for margins).",
)
@click.option(
    "--spare-headlines",
    is_flag=True,
    help="Hide the grand total and first-level cells only where nothing else protects a primary "
    "(as releases do; slower on large tables).",
)
def protect(
    cells,
    dims,
    value,
    threshold,
    zeros,
    protection,
    rounding_base,
    total,
    method,
    out,
    public,
    contributor,
    dominance,
    p_percent,
    singletons,
    cost,
    publish,
    spare_headlines,
):
    """Protect any table given as base cells, as tau-Argus users know it.

    Builds every total, suppresses counts below the threshold, adds secondary suppressions until
    the attacker audit passes, and writes every cell with its status (and the public view).
    --protection is the width of the interval an intruder must not be able to narrow a primary
    cell below, however it lies around the true value (where a tool states a lower and an upper
    protection level, their sum); it defaults to the threshold. --protection 1 asks only that no
    primary cell be disclosed exactly.

    \b
    Example:
      opendata protect cells.csv --dim subcontractor --dim area=area_hierarchy.csv \\
          --dim claimant_group --value job_starts --threshold 10 --out protected.csv --public public.csv
    """
    from disclosure.cells import protect_cells_file

    rule = None
    if dominance is not None:
        n, _, k = dominance.partition(",")
        try:
            rule = (int(n), float(k))
        except ValueError:
            raise click.BadParameter(
                f"expected N,K such as 2,85; got {dominance!r}", param_hint="--dominance"
            ) from None
    with user_errors():
        result = protect_cells_file(
            cells,
            list(dims),
            value,
            threshold=threshold,
            zeros=zeros,
            protection=protection,
            rounding_base=rounding_base,
            total=total,
            method=method,
            out=out,
            public=public,
            contributor=contributor,
            dominance=rule,
            p_percent=p_percent,
            singletons=singletons,
            cost=cost,
            publish=publish,
            spare_headlines=spare_headlines,
        )
    c = result.counts
    click.echo(
        f"cells {c['cells']:,}: primary {c['primary']:,}, secondary {c['secondary']:,}; audit passed; wrote {out}"
    )


@main.command()
@click.argument("package", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--previous",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="An earlier version of the same dataset (repeat): audited together, against differencing.",
)
@click.option("--spec", type=click.Path(dir_okay=False, path_type=Path), help="With --mi: the release spec.")
@click.option(
    "--mi",
    multiple=True,
    type=click.Path(path_type=Path),
    help="The MI behind the release (publisher only): tells which cells are primary.",
)
@click.option(
    "--intruders",
    metavar="LEVELS",
    help="With --mi: check each unit at these comma-separated levels (e.g. subcontractor,prime_contract,cpa), "
    "knowing its own cells [default: the intruders the package names].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def audit(package: Path, previous, spec, mi, intruders: str | None, as_json: bool):
    """Recompute every protected cell's feasible interval from the published files alone.

    The attacker sees every table of the version (and of --previous versions), their hierarchies,
    the rounding intervals and the rules. With --spec and --mi the primary cells are known and
    checked exactly; without, every suppressed cell is held to the protection width (stricter),
    except one pinned to exactly 0, which has no contributor (when the rules say zeros are safe), and
    a count shown to be at least the threshold, which the rules would not have made primary.
    With the MI, the newest version is also checked against each intruder unit (the package's, or
    --intruders) knowing all its own cells. Exit code 1 if any cell can be narrowed below its
    protection width.

    \b
    Example:
      opendata audit releases/work-programme-subcontractor-mi/1.1.0 \\
          --previous releases/work-programme-subcontractor-mi/1.0.0 \\
          --spec specs/work-programme-annual.yaml --mi mi/*.csv
    """
    from opendata.audit import audit_package, audit_with_mi
    from opendata.spec import load_spec

    if bool(spec) != bool(mi):
        raise click.UsageError("--spec and --mi go together")
    if intruders is not None and not spec:
        raise click.UsageError("--intruders needs --spec and --mi (the units' own cells come from the MI)")
    with user_errors():
        if spec:
            loaded = load_spec(spec)
            levels = None if intruders is None else [x.strip() for x in intruders.split(",") if x.strip()]
            known = {level for d in loaded.dimensions.values() for level in d.levels}
            if levels is not None and not levels:
                raise click.BadParameter("--intruders names no level")
            if unknown := sorted(set(levels or ()) - known):
                raise click.BadParameter(f"{unknown} are not levels of any dimension (levels: {sorted(known)})")
            try:
                report = audit_with_mi(package, list(previous), loaded, list(mi), levels)
            except ValidationFailed as exc:
                print_problems(exc.problems, exc.total, as_json)
                console.print("[bold red]audit refused:[/] the MI does not pass validation")
                sys.exit(1)
        else:
            report = audit_package(package, list(previous))
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
    else:
        who = "primary cells" if report.primaries_known else "suppressed cells (primaries unknown: stricter)"
        out.print(f"checked {report.checked:,} {who} in {', '.join(report.versions)}")
        if report.zeros:
            out.print(f"{report.zeros:,} hidden cell(s) are exactly 0: no contributor, never primary (zeros safe)")
        if report.above_threshold:
            out.print(f"{report.above_threshold:,} hidden count(s) are at least the threshold: never primary")
        if report.misled:
            out.print(
                f"{report.misled:,} cell(s) narrowed to an interval without their true value: the attacker is "
                "misled there (a correction no published value shows), no disclosure"
            )
        if report.jointly:
            out.print(f"related measures: {report.jointly}", highlight=False)
        if report.intruders:
            out.print(f"intruders: {report.intruders}", highlight=False)
        for e in report.exposed[:MAX_PROBLEMS_SHOWN]:
            out.print(f"[red]exposed[/] {e.describe()}", highlight=False)
        for problem in report.derived:
            out.print(f"[red]derived[/] {escape(problem)}", highlight=False)
        if report.ok:
            out.print("[green]audit passed[/]: no cell can be narrowed below its protection width")
    if not report.ok:
        sys.exit(1)


@main.command("check-spreadsheet")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def check_spreadsheet(files: tuple[Path, ...], as_json: bool):
    """Check ODS and XLSX files against the Analysis Function's spreadsheet guidance.

    Cover, contents and notes sheets; a title in A1 of every sheet; one marked-up table per sheet
    starting in column A with one header row; no merged cells, blank or hidden rows and columns,
    fills; numbers as numbers and GSS shorthand in square brackets; title and language in the
    file's properties. Each failure names its sheet and cell. Exit code 1 if any file fails.

    \b
    Example:
      opendata check-spreadsheet releases/work-programme-subcontractor-mi/1.0.0/*.ods
    """
    from opendata.spreadsheet_check import check_spreadsheet as check

    with user_errors():
        findings = [x for f in files for x in check(f)]
    if as_json:
        out.print_json(json.dumps([x.__dict__ for x in findings]))
    else:
        for x in findings[:MAX_PROBLEMS_SHOWN]:
            out.print(f"[red]fails[/] {escape(x.describe())}", highlight=False)
        if len(findings) > MAX_PROBLEMS_SHOWN:
            out.print(f"… and {len(findings) - MAX_PROBLEMS_SHOWN:,} more")
        if not findings:
            out.print(f"[green]passed[/]: {len(files)} file(s) follow the spreadsheet guidance")
    if findings:
        sys.exit(1)


@main.command()
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=Path("releases"))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--quiet", "-q", is_flag=True, help="No request log.")
def serve(root: Path, host: str, port: int, quiet: bool):
    """Serve the public release tree read-only over HTTP (ETag, Last-Modified, ranges).

    Only files the catalogue lists are served inside version directories; nothing outside the
    tree, no dot-files, no directory listings. Any static web host works just as well.

    \b
    Example:
      opendata serve releases/ --port 8000
    """
    from opendata.serve import serve as run

    console.print(f"serving {root} on http://{host}:{port}/ (Ctrl-C to stop)")
    with user_errors():
        run(root, host, port, quiet=quiet)


@main.command()
@click.argument("source")
@click.argument("mirror", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--trust",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The publisher's public key; the catalogue must be signed with it.",
)
@click.option("--dry-run", is_flag=True, help="Report what would be fetched; write nothing.")
@click.option(
    "--deadline", type=click.FloatRange(min=1), default=3600, show_default=True, help="Seconds for the whole sync."
)
@click.option(
    "--max-bytes",
    type=click.IntRange(min=0),
    default=64 << 30,
    show_default=True,
    help="Most bytes one sync downloads.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def sync(source: str, mirror: Path, trust: Path, dry_run: bool, deadline: float, max_bytes: int, as_json: bool):
    """Mirror a publisher's release tree: fetch only new versions, verify everything first.

    SOURCE is an http(s):// URL or a directory. A version appears in the mirror only once every
    file's hash and the signatures check out; on any failure the mirror is left unchanged.

    \b
    Example:
      opendata sync https://stats.example/releases/ mirror/ --trust publisher.pub
    """
    from opendata.sync import sync as run

    with user_errors():
        summary = run(
            source,
            mirror,
            trust,
            dry_run=dry_run,
            progress=None if not as_json else False,
            deadline=deadline,
            max_bytes=max_bytes,
        )
    if as_json:
        out.print_json(json.dumps(summary.to_dict(), default=str))
        return
    if summary.up_to_date:
        out.print(f"{mirror} is up to date ({summary.requests} request(s))")
        return
    verb = "would add" if dry_run else "added"
    for v in summary.versions_added:
        out.print(f"{verb} {v}")
    out.print(f"{summary.files_downloaded} file(s), {summary.bytes_downloaded:,} bytes, {summary.requests} request(s)")


@main.group()
def hub():
    """The comparative performance hub: organisations upload, the hub checks, protects and publishes.

    \b
    Example:
      opendata hub init hub/
      opendata hub add-org hub/ acme --title "Acme Employment"
      opendata hub add-user hub/ ana@acme.example --org acme
      opendata hub token hub/ acme
      opendata hub serve hub/ --port 8080
    """


HUB_DIR = click.argument("root", type=click.Path(file_okay=False, path_type=Path))


@hub.command("init")
@HUB_DIR
@click.option("--specs", type=click.Path(file_okay=False, path_type=Path), default=Path("specs"), show_default=True)
def hub_init(root: Path, specs: Path):
    """Create a hub: its store, signing key and a copy of the standard specs uploads must follow."""
    from opendata.hub.uploads import init_hub
    from opendata.signing import fingerprint, load_public_key

    with user_errors():
        layout = init_hub(root, specs)
    out.print(f"hub created at {root}; its catalogue is signed with {layout.public_key}")
    out.print(f"fingerprint {fingerprint(load_public_key(layout.public_key))}")


@hub.command("add-org")
@HUB_DIR
@click.argument("name")
@click.option("--title", required=True, help="The organisation's name as readers see it.")
@click.option(
    "--key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The organisation's Ed25519 public key: its API uploads must then be signed with it.",
)
def hub_add_org(root: Path, name: str, title: str, key: Path | None):
    """Register an organisation that may upload its programme's MI."""
    from opendata.hub.store import Store
    from opendata.signing import load_public_key

    with user_errors():
        pem = None
        if key is not None:
            load_public_key(key)  # refused here if it is not an Ed25519 public key
            pem = key.read_text(encoding="ascii").strip()
        Store(root).add_org(name, title, pem)
    out.print(f"organisation {name} added")


@hub.command("add-user")
@HUB_DIR
@click.argument("email")
@click.option("--org", required=True)
@click.password_option(envvar="OPENDATA_HUB_PASSWORD", help="At least 12 characters (or $OPENDATA_HUB_PASSWORD).")
def hub_add_user(root: Path, email: str, org: str, password: str):
    """Give a person of an organisation a sign-in for the hub's web pages."""
    from opendata.hub.store import Store

    with user_errors():
        Store(root).add_user(email, org, password)
    out.print(f"{email} can sign in for {org}")


@hub.command("token")
@HUB_DIR
@click.argument("org")
def hub_token(root: Path, org: str):
    """Make an API token for an organisation's programs; it is shown once, only its hash is kept."""
    from opendata.hub.store import Store

    with user_errors():
        token = Store(root).new_token(org)
    click.echo(token)


@hub.command("upload")
@HUB_DIR
@click.argument("org")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--kind", type=click.Choice(["records", "aggregated"]), default="records", show_default=True)
@click.option("--publish", "then_publish", is_flag=True, help="Preview and publish at once if the checks pass.")
@click.option("--corrects", type=int, help="The number of the query this upload corrects.")
def hub_upload(root: Path, org: str, files: tuple[Path, ...], kind: str, then_publish: bool, corrects: int | None):
    """Upload MI for an organisation from the hub's own machine (the web form and API do the same).

    \b
    Example:
      opendata hub upload hub/ acme mi/work-programme-mi.csv --publish
    """
    import shutil
    import tempfile

    from opendata.hub import uploads as lifecycle
    from opendata.hub.store import HubError, Store

    layout, store = lifecycle.Layout(root), Store(root)
    with user_errors():
        if store.org(org) is None:
            raise HubError(f"no organisation {org!r} (add it with: opendata hub add-org)")
        with tempfile.TemporaryDirectory(dir=root) as temp:
            copies = {}
            for i, path in enumerate(files):
                copies[path.name] = Path(temp) / str(i)
                shutil.copyfile(path, copies[path.name])
            upload = lifecycle.receive(layout, store, org, kind, copies, "admin", corrects)
        out.print(f"upload {upload.id}: {upload.status}")
        if upload.status == "rejected":
            out.print(f"problems: {lifecycle.todo_path(layout, upload)}")
            sys.exit(1)
        if then_publish:
            lifecycle.preview(layout, store, upload, "admin")
            target = lifecycle.publish_upload(layout, store, store.upload(upload.id, org), "admin")
            out.print(f"published {target}")


@hub.command("subscribe")
@HUB_DIR
@click.argument("name")
@click.argument("source")
@click.option("--trust", type=click.Path(dir_okay=False, exists=True, path_type=Path), required=True)
@click.option("--title", required=True, help="The publisher's name as readers see it.")
@click.option("--kind", type=click.Choice(["official statistics", "management information"]), required=True)
def hub_subscribe(root: Path, name: str, source: str, trust: Path, title: str, kind: str):
    """Mirror a publisher's signed release tree (SOURCE: its URL or directory) and show its packages.

    \b
    Example:
      opendata hub subscribe hub/ dwp https://stats.example/releases/ --trust dwp.pub \\
        --title "Department for Work and Pensions" --kind "management information"
    """
    from opendata.hub.publishers import subscribe
    from opendata.hub.store import Store
    from opendata.signing import load_public_key

    with user_errors():
        load_public_key(trust)
        subscribe(root, Store(root), name, title, source, trust.read_text(encoding="ascii"), kind)
    out.print(f"subscribed to {name}; fetch it with: opendata hub refresh {root}")


@hub.command("refresh")
@HUB_DIR
def hub_refresh(root: Path):
    """Sync every subscribed publisher's tree, verifying each with the publisher's key."""
    from opendata.hub.publishers import refresh
    from opendata.hub.store import Store

    with user_errors():
        done = refresh(root, Store(root))
    for r in done:
        out.print(f"{r.name}: {r.result}")
    if not all(r.ok for r in done):
        sys.exit(1)


@hub.command("log")
@HUB_DIR
def hub_log(root: Path):
    """Print the audit log: every upload, preview, publication, sign-in and admin action."""
    from opendata.hub.store import Store

    with user_errors():
        for entry in Store(root).audit_log():
            click.echo(json.dumps(entry, sort_keys=True))


@hub.command("serve")
@HUB_DIR
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--secure-cookies", is_flag=True, help="Send the session cookie over HTTPS only (behind a TLS proxy).")
@click.option("--max-body", type=click.IntRange(min=1), default=200 * 1024 * 1024, show_default=True, help="Bytes.")
def hub_serve(root: Path, host: str, port: int, secure_cookies: bool, max_body: int):
    """Run the hub's web application and API (Starlette on uvicorn)."""
    import uvicorn

    from opendata.hub.app import create_app

    with user_errors():
        app = create_app(root, secure_cookies=secure_cookies, max_body=max_body)
    out.print(f"hub at http://{host}:{port}/ (Ctrl-C stops it)")
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)


@main.group()
def css():
    """Customer Service Standards: a framework per prime provider (Work Programme report, recs 4–13).

    \b
    Example:
      opendata css check specs/css/P01.yaml
    """


@css.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--today",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Check the review date against this day [default: today in London].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the scores and findings as JSON on stdout.")
def css_check(files: tuple[Path, ...], today: datetime | None, as_json: bool):
    """Check CSS frameworks: the schema, the review date and the plain English of each Service Standard.

    Scores each Service Standard's readability (Flesch Reading Ease, Flesch-Kincaid grade) and
    flags each sentence a customer would stumble on: over 25 words, above grade 9, or jargon.
    A review more than six months old is flagged (rec 8). Exit code 1 on any error (an override
    for a payment group that does not exist, a review date in the future, a malformed file).

    \b
    Example:
      opendata css check specs/css/*.yaml --today 2026-12-01
    """
    from opendata.css import check_files

    with user_errors():
        reports = check_files(list(files), today.date() if today else None)
    ok = all(r.ok for r in reports)
    if as_json:
        out.print_json(json.dumps({"ok": ok, "frameworks": [r.to_dict() for r in reports]}))
        sys.exit(0 if ok else 1)
    for r in reports:
        fw = r.framework
        table = Table(
            title=f"{fw.prime}: {escape(fw.title)} ({escape(str(fw.path))}, reviewed {fw.reviewed})",
            title_justify="left",
        )
        table.add_column("stage", no_wrap=True)
        for col in ("standard measure", "words", "reading ease", "grade"):
            table.add_column(col, overflow="fold")
        for stage, score in zip(fw.stages, r.readability, strict=True):
            measure = escape(stage.standard_measure.describe())
            table.add_row(stage.id, measure, str(score.words), f"{score.flesch_reading_ease:.1f}", f"{score.grade:.1f}")
        out.print(table)
        if not r.findings:
            out.print(f"[green]ok[/]: {escape(str(fw.path))} has no findings")
            continue
        found = Table(title=f"{len(r.findings)} finding(s) in {escape(str(fw.path))}", title_justify="left")
        for col in ("severity", "stage", "rule", "message"):
            found.add_column(col, overflow="fold")
        for f in r.findings:
            colour = "red" if f.severity == "error" else "yellow"
            found.add_row(f"[{colour}]{f.severity}[/]", f.stage or "(framework)", f.rule, escape(f.message))
        console.print(found)
    sys.exit(0 if ok else 1)


def _statisticians_table(compute, out_file: Path | None):
    """``compute()`` (a table and the day it is as of), every bad input a message and exit code 1, and
    the table written to ``out_file`` whole or not at all: the two ``css`` measuring commands."""
    from opendata.standards import write_csv

    try:
        with user_errors():
            table, day = compute()
            if out_file is not None:
                write_csv(table, out_file)
    except ValidationFailed as exc:
        print_problems(exc.problems, exc.total, False)
        sys.exit(1)
    return table, day


@css.command("measure")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--events", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Journey events file.")
@click.option("--framework", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The prime's CSS.")
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="The extract date: what is known on this day [default: the latest date in the events].",
)
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), help="Write the table as CSV.")
def css_measure(
    spec: Path, files: tuple[Path, ...], events: Path, framework: Path, as_of: datetime | None, out_file: Path | None
):
    """Measure a prime's Customer Service Standards on its MI and journey events, stage by stage.

    Per stage, for the prime and each subcontractor: cases met, late, outstanding (the limit passed,
    the event not come) and not yet due; the share meeting the standard with a 95% Wilson interval;
    median and quartiles of the time taken and the share within the limit, up to twice it and over.
    Reviews are measured by each participant's largest gap. Whether the share and the times pass the
    spec's threshold for publication is in two columns; the table itself is the statistician's view
    (exact counts), not a published table.

    \b
    Example:
      opendata sample --out mi/ --rows 20000 --months 30 --journey --format csv
      opendata css measure specs/work-programme.yaml mi/work-programme-mi.csv \\
        --events mi/work-programme-journey.csv --framework specs/css/P01.yaml --out p01-css.csv
    """
    from opendata.standards import measure_files

    day_ = as_of.date() if as_of else None
    table, day = _statisticians_table(lambda: measure_files(spec, list(files), events, framework, day_), out_file)
    view = Table(
        title=f"Customer Service Standards as of {day} ({escape(str(framework))})",
        title_justify="left",
        caption="\\[c]: fewer cases than the spec's threshold: not publishable",
    )
    for col in ("stage", "provider", "cases", "met", "late", "outstanding", "share met (95% CI)", "median", "IQR"):
        view.add_column(col, overflow="fold")
    for r in table.itertuples():
        share = "" if r.cases == 0 else f"{r.share_met:.1%} ({r.ci_low:.1%}–{r.ci_high:.1%})"
        share += "" if r.share_publishable else " \\[c]"
        median, iqr = ("", "") if r.median != r.median else (f"{r.median:g}", f"{r.quartile_1:g}–{r.quartile_3:g}")
        counts = (str(x) for x in (r.cases, r.met, r.late, r.outstanding))
        view.add_row(r.stage, r.provider, *counts, share, median, iqr)
    out.print(view)
    if out_file is not None:
        out.print(f"wrote {escape(str(out_file))}")


@css.command("complaints")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--record", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Complaints file.")
@click.option("--prime", required=True, help="The prime contract's code, e.g. P01.")
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="What is known on this day [default: the latest date in the record].",
)
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), help="Write the table as CSV.")
def css_complaints(
    spec: Path, files: tuple[Path, ...], record: Path, prime: str, as_of: datetime | None, out_file: Path | None
):
    """Complaints per 1,000 participants for a prime and each subcontractor, by stage and category.

    With the exact Poisson interval, complaints upheld (in full or part), taken to the Independent
    Case Examiner and still open, and feedback counted apart. Whether each count may be published
    (none, or at least the spec's threshold) is in a column; the table is the statistician's view.

    \b
    Example:
      opendata css complaints specs/work-programme.yaml mi/work-programme-mi.csv \\
        --record mi/work-programme-complaints.csv --prime P01 --out p01-complaints.csv
    """
    from opendata.complaints import measure_files

    day_ = as_of.date() if as_of else None
    table, day = _statisticians_table(lambda: measure_files(spec, list(files), record, prime, day_), out_file)
    view = Table(
        title=f"Complaints per 1,000 participants, {escape(prime)}, as of {day}",
        title_justify="left",
        caption="\\[c]: fewer complaints than the spec's threshold: not publishable",
    )
    for col in ("provider", "stage", "category", "participants", "complaints", "per 1,000 (95% CI)", "upheld", "open"):
        view.add_column(col, overflow="fold")
    for r in table.itertuples():
        rate = f"{r.per_1000:.1f} ({r.ci_low:.1f}–{r.ci_high:.1f})" + ("" if r.publishable else " \\[c]")
        counts = (str(x) for x in (r.participants, r.complaints))
        view.add_row(r.provider, r.stage, r.category, *counts, rate, str(r.upheld), str(r.open))
    out.print(view)
    if out_file is not None:
        out.print(f"wrote {escape(str(out_file))}")


if __name__ == "__main__":
    main()
