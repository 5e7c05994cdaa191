"""Pages people read: a release page per version (``index.html`` beside ``datapackage.json``) and an
index of the whole tree (``index.html`` at its root, so the root no longer answers 404).

Static HTML with no JavaScript, in a plain GOV.UK-like design that reflows to 320 px; every text is
escaped (titles, reasons and codes come from specs and MI, and may hold markup). The tests render
both pages in headless Chromium and run axe-core's WCAG 2.2 A and AA rules on them. Only the
standard library: the tree index is written by the catalogue, on the hosts' side, and the release
page reads the package's own CSV and hierarchy files, so it shows exactly what the package publishes.
The same package gives the same bytes.
"""

from __future__ import annotations

import csv
import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from opendata.descriptor import MISSING_LABELS, finest_period, is_period, parse_time
from opendata.versions import semver_key

PAGE_FILE = "index.html"
MAX_SERIES = 120  # months drawn per chart: the newest, so a long series stays readable

STYLE = """
body{font-family:"Helvetica Neue",Arial,sans-serif;color:#0b0c0c;background:#fff;margin:0;line-height:1.5}
.skip{position:absolute;left:-9999px}.skip:focus{left:1rem;top:1rem;background:#fd0;color:#0b0c0c;padding:.5rem}
header{background:#0b0c0c;color:#fff;padding:.75rem 1rem}header a{color:#fff;font-weight:bold}
main,footer{max-width:60rem;margin:0 auto;padding:0 1rem}footer{border-top:1px solid #b1b4b6;margin-top:2rem}
h1{font-size:2rem;line-height:1.2}h2{font-size:1.5rem;margin-top:2rem}
a{color:#1d70b8}a:visited{color:#4c2c92}a:focus{outline:3px solid #fd0;background:#fd0;color:#0b0c0c}
.lead{font-size:1.2rem}dl{display:grid;grid-template-columns:minmax(8rem,max-content) 1fr;gap:.25rem 1rem}
dt{font-weight:bold}dd{margin:0}.scroll{overflow-x:auto}.scroll:focus{outline:3px solid #fd0}
table{border-collapse:collapse;width:100%;margin:.5rem 0}caption{text-align:left;font-weight:bold}
th,td{border-bottom:1px solid #b1b4b6;padding:.4rem .6rem .4rem 0;text-align:left;vertical-align:top}
td.n,th.n{text-align:right}code{word-break:break-all;font-size:.9rem}
figure{margin:1rem 0}svg{max-width:100%;height:auto}.big{font-size:1.5rem;font-weight:bold}
@media (max-width:40rem){h1{font-size:1.5rem}dl{grid-template-columns:1fr}}
"""


@dataclass(frozen=True)
class Series:
    """A headline measure: its total over the whole release and its national monthly figures."""

    name: str
    title: str
    unit: str
    total: int | None
    total_status: str
    months: list[tuple[str, str, int | None, str]]  # (code, label, value, status)


def release_page(version_dir: Path, descriptor: dict[str, Any]) -> bytes:
    """The release page of a version, from its descriptor and its first table's CSV."""
    d = descriptor
    release = d.get("opendata:release") or {}
    title = f"{d['title']}, version {d['version']}"
    body = [
        f"<h1>{_e(d['title'])}</h1>",
        f"<p class='lead'>Version {_e(d['version'])}. {_e(d.get('description', ''))}</p>",
    ]
    body.append(_facts(d, release))
    if release.get("statement"):
        body += ["<h2 id='release'>About this release</h2>", _list(release["statement"])]
    series, table_title = _headlines(version_dir, d)
    if series:
        body += [
            "<h2 id='headlines'>Headline figures</h2>",
            f"<p>From the table “{_e(table_title)}”, for the whole programme.</p>",
        ]
        body.append("<ul>" + "".join(f"<li>{_headline(s)}</li>" for s in series) + "</ul>")
        body.append("<h2 id='monthly'>Month by month</h2>")
        body += [_chart(s, n) for n, s in enumerate(series, start=1)]
    funnels = _funnels(version_dir, d)
    if funnels:
        intro = ("<p>Each contract package area (CPA) over the whole release, from the published figures only "
                 "(the package's indicators): a CPA outside the limits differs from the programme by more than "
                 "chance would explain.</p>")  # fmt: skip
        body += ["<h2 id='compare'>How CPAs compare</h2>", intro, *funnels]
    scorecard = _scorecard(version_dir, d)
    if scorecard:
        body += ["<h2 id='scorecard'>Scorecard of prime contracts</h2>", scorecard]
    body += ["<h2 id='hidden'>What was hidden, and why</h2>", _disclosure(d)]
    body += ["<h2 id='revisions'>Revisions</h2>", _revisions(d)]
    body += ["<h2 id='downloads'>Downloads</h2>", _downloads(d)]
    body += ["<h2 id='cite'>How to cite</h2>", f"<p>{_e(_citation(d))}</p>"]
    home = "<a href='../../index.html'>All releases</a>"
    return _document(title, home, "\n".join(body), _licence(d))


@dataclass(frozen=True)
class Listed:
    """A version as the tree index lists it."""

    name: str
    version: str
    title: str
    created: str
    path: str  # of its directory, relative to the root
    page: bool  # whether it has a release page


def tree_index(versions: Sequence[Listed], title: str) -> bytes:
    """The root page: every package, its versions newest first, and the machine-readable files."""
    by_name: dict[str, list[Listed]] = {}
    for v in versions:
        by_name.setdefault(v.name, []).append(v)
    body = [f"<h1>{_e(title)}</h1>"]
    if not by_name:
        body.append("<p>Nothing has been released yet.</p>")
    for name in sorted(by_name):
        listed = sorted(by_name[name], key=lambda v: (v.created, semver_key(v.version)), reverse=True)
        body.append(f"<h2>{_e(listed[0].title)}</h2><p>Package <code>{_e(name)}</code>.</p><ul>")
        for v in listed:
            target = f"{v.path}/{PAGE_FILE}" if v.page else f"{v.path}/datapackage.json"
            body.append(f"<li><a href='{_e(target)}'>Version {_e(v.version)}</a>, released {_e(_when(v.created))}</li>")
        body.append("</ul>")
    body.append(
        "<h2>For machines</h2><ul><li><a href='catalog.json'>catalog.json</a> (every file with its size and "
        "SHA-256; signed)</li><li><a href='catalog.jsonld'>catalog.jsonld</a> (DCAT)</li>"
        "<li><a href='feed.atom'>feed.atom</a> (a feed of new releases)</li></ul>"
    )
    return _document(title, "", "\n".join(body), "")


# --- release page parts ----------------------------------------------------------------------------


def _facts(d: dict[str, Any], release: dict[str, Any]) -> str:
    rows = [("Kind", str(d.get("opendata:kind", "not stated")).capitalize())]
    rows.append(("Released", _when(d["created"])))
    rows.append(
        ("Next release", _when(release["next_release"]) if release.get("next_release") else "Not yet announced")
    )
    period = release.get("period")
    if period:
        rows.append(("Period covered", f"{period['from']} to {period['to']}"))
    cut = release.get("cutoff")
    if isinstance(cut, dict) and cut.get("covers"):
        rows.append(("Data up to", cut["covers"]))
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows) + "</dl>"


def _headlines(version_dir: Path, d: dict[str, Any]) -> tuple[list[Series], str]:
    """The measures of the first table with a month dimension, at the total of every other dimension."""
    for r in d["resources"]:
        if r.get("type") != "table" or r.get("format") != "csv" or r.get("opendata:derived"):
            continue
        if r["name"].startswith("hierarchy-") or r["name"].endswith("-mi-ahead"):
            continue
        dims = list(r["schema"]["primaryKey"])
        hierarchies = {dim: _hierarchy(version_dir, dim) for dim in dims}
        months = [dim for dim, h in hierarchies.items() if is_period(level for _, level in h.values())]
        if len(months) != 1:
            continue
        period = months[0]
        finest = finest_period(level for _, level in hierarchies[period].values())
        totals = {dim: next(c for c, (parent, _) in h.items() if parent == "") for dim, h in hierarchies.items()}
        fields = {f["name"]: f for f in r["schema"]["fields"]}
        labels = {c["value"]: c.get("label", c["value"]) for c in fields[period].get("categories", [])}
        measures = [n for n in fields if n not in dims]
        rows = [row for row in _csv(version_dir / r["path"]) if all(row[x] == totals[x] for x in dims if x != period)]
        out = []
        for m in measures:
            total = next((row[m] for row in rows if row[period] == totals[period]), "[x]")
            monthly = [(row[period], labels.get(row[period], row[period]), *_value(row[m])) for row in rows
                       if hierarchies[period][row[period]][1] == finest]  # fmt: skip
            out.append(Series(m, fields[m].get("title", m), fields[m].get("opendata:unit", ""), *_value(total),
                              monthly[-MAX_SERIES:]))  # fmt: skip
        return out, r.get("title", r["name"])
    return [], ""


def _hierarchy(version_dir: Path, dim: str) -> dict[str, tuple[str, str]]:
    return {
        row["code"]: (row["parent"], row.get("level", "")) for row in _csv(version_dir / "hierarchies" / f"{dim}.csv")
    }


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _value(text: str) -> tuple[int | None, str]:
    if text.startswith("[") and text.endswith("]"):
        return None, text[1:-1]
    return int(text), ""


def _headline(s: Series) -> str:
    span = f" from {s.months[0][1]} to {s.months[-1][1]}" if s.months else ""
    if s.total is None:
        return f"{_e(s.title)}{_e(span)}: not published ({_e(MISSING_LABELS.get(s.total_status, s.total_status))})."
    unit = f" ({s.unit})" if s.unit else ""
    return f"<span class='big'>{s.total:,}</span> {_e(s.title.lower() + unit + span)}."


def _chart(s: Series, n: int) -> str:
    """A bar chart as inline SVG (title and description for screen readers), the data beside it."""
    shown = [v for _, _, v, _ in s.months if v is not None]
    top = max(shown, default=0) or 1
    width, height, left, bottom = 640, 260, 96, 40
    step = (width - left - 8) / max(len(s.months), 1)
    bars = []
    for i, (_, label, value, status) in enumerate(s.months):
        x = left + i * step
        if value is None:
            bars.append(f"<text x='{x + step / 2:.1f}' y='{height - bottom - 4}' font-size='16' text-anchor='middle'>"
                        f"{_e(status)}</text>")  # fmt: skip
            continue
        h = (height - bottom - 16) * value / top
        bars.append(f"<rect x='{x + step * 0.1:.1f}' y='{height - bottom - h:.1f}' width='{step * 0.8:.1f}' "
                    f"height='{h:.1f}' fill='#1d70b8'><title>{_e(label)}: {value:,}</title></rect>")  # fmt: skip
    first, last = (s.months[0][1], s.months[-1][1]) if s.months else ("", "")
    hidden = sum(v is None for _, _, v, _ in s.months)
    desc = (
        f"{s.title} by month, {first} to {last}: lowest {min(shown, default=0):,}, highest {max(shown, default=0):,}"
        + (f"; {hidden} month(s) not published, marked with their shorthand" if hidden else "")
        + ". The data is in the table below the chart."
    )
    svg = (
        f"<svg viewBox='0 0 {width} {height}' role='img' aria-labelledby='chart{n}-t chart{n}-d' "
        f"xmlns='http://www.w3.org/2000/svg'><title id='chart{n}-t'>{_e(s.title)} by month</title>"
        f"<desc id='chart{n}-d'>{_e(desc)}</desc>"
        f"<line x1='{left}' y1='{height - bottom}' x2='{width - 8}' y2='{height - bottom}' stroke='#0b0c0c'/>"
        f"<text x='{left - 6}' y='{height - bottom}' font-size='20' text-anchor='end'>0</text>"
        f"<text x='{left - 6}' y='24' font-size='20' text-anchor='end'>{top:,}</text>"
        f"<text x='{left}' y='{height - 8}' font-size='20'>{_e(first)}</text>"
        f"<text x='{width - 8}' y='{height - 8}' font-size='20' text-anchor='end'>{_e(last)}</text>"
        + "".join(bars)
        + "</svg>"
    )
    rows = "".join(
        f"<tr><td>{_e(label)}</td><td class='n'>{f'{v:,}' if v is not None else _e(f'[{st}]')}</td></tr>"
        for _, label, v, st in s.months
    )
    table = (
        f"<div class='scroll' role='region' aria-label='{_e(s.title)} by month, data' tabindex='0'><table>"
        f"<caption>{_e(s.title)} by month</caption><thead><tr><th scope='col'>Month</th>"
        f"<th scope='col' class='n'>{_e(s.title)}</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )
    data = f"<details><summary>Data for this chart</summary>{table}</details>"
    return f"<h3>{_e(s.title)}</h3><figure>{svg}<figcaption>{_e(desc)}</figcaption></figure>{data}"


Z = {"95": 1.959964, "99.8": 3.090232}  # two-sided normal quantiles of the funnel limits


def _funnels(version_dir: Path, d: dict[str, Any]) -> list[str]:
    """A funnel plot per proportion indicator: each CPA over the whole release against the programme,
    with the 95% and 99.8% limits (score test: p0 ± z·sqrt(p0(1-p0)/n), as ``opendata compare``)."""
    resource = next(
        (r for r in d["resources"] if r.get("opendata:derived") == "indicators" and r["path"].endswith(".csv")), None
    )  # not the scorecard, also derived and a CSV
    if resource is None:
        return []
    rows = _csv(version_dir / resource["path"])
    out = []
    for ind in d.get("opendata:indicators") or []:
        if ind.get("kind") != "proportion" or ind.get("standardise_by"):
            continue
        mine = [r for r in rows if r["indicator"] == ind["name"] and r["period"] == "Total"]
        table = mine[0]["table"] if mine else ""
        mine = [r for r in mine if r["table"] == table]
        points = [
            FunnelPoint(
                r["entity"],
                float(r["denominator"]),
                float(r["value"]),
                float(r["lower_95"]),
                float(r["upper_95"]),
                r["compared_95"],
            )
            for r in mine
            if r["entity_level"] == "cpa" and not r["status"]
        ]
        bench = next((r for r in mine if r["entity_level"] == "total"), None)
        if not points or bench is None or bench["status"] or bench["benchmark"].startswith("["):
            continue
        title = f"{ind['title']}: each CPA against the programme"
        figure = funnel_figure(
            title, f"{len(points)} CPAs over the whole release", points, float(bench["benchmark"]),
            ind["denominator"], "CPA", len(out) + 1,
        )  # fmt: skip
        out.append(f"<h3>{_e(ind['title'])}</h3>{figure}")
    return out


def _scorecard(version_dir: Path, d: dict[str, Any]) -> str:
    """The balanced scorecard (report recommendation 12) as the package's ``scorecard`` resource
    holds it: each prime contract over the whole period on every proportion published, with its 95%
    interval, its verdict against the programme and against its contract's level."""
    resource = next((r for r in d["resources"] if r.get("opendata:derived") == "scorecard"), None)
    if resource is None:
        return ""
    titles = {i["name"]: i.get("title", i["name"]) for i in d.get("opendata:indicators") or []}
    rows = _csv(version_dir / resource["path"])
    shown = list(dict.fromkeys(r["indicator"] for r in rows))
    cells = {(r["prime_contract"], r["indicator"]): r for r in rows}

    def cell(r: dict[str, str] | None) -> str:
        if r is None:
            return "<td>not published</td>"
        level = "" if r["contractual_level"] == "[x]" else f"; level {float(r['contractual_level']):.1%}: "
        if r["status"]:
            return f"<td>[{_e(r['status'])}]{_e(level + 'not known' if level else '')}</td>"
        return (
            f"<td>{float(r['value']):.1%} ({float(r['lower_95']):.1%} to {float(r['upper_95']):.1%}), "
            f"{_e(r['compared_95'] or 'not compared')}{_e(level + r['against_level'] if level else '')}</td>"
        )

    head = "".join(f"<th scope='col'>{_e(titles.get(i, i))}</th>" for i in shown)
    body = [
        f"<tr><th scope='row'>{_e(prime)}</th>{''.join(cell(cells.get((prime, i))) for i in shown)}</tr>"
        for prime in sorted({r["prime_contract"] for r in rows})
    ]
    caption = (
        "Each prime contract: value, 95% interval, verdict against the programme at 95% and, where the contract "
        "sets a level, whether it is met"
    )
    return (
        "<p>Service standards and outcomes side by side, from the published figures only (the package's "
        f"<a href='{_e(resource['path'])}'>scorecard</a>). Against a level: met or not met where the 95% interval "
        "lies wholly on one side of it, else not clear. [c]: suppressed to protect people.</p>"
        "<div class='scroll' role='region' aria-label='Scorecard' tabindex='0'><table>"
        f"<caption>{caption}</caption><thead><tr><th scope='col'>Prime contract</th>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


@dataclass(frozen=True)
class FunnelPoint:
    """One unit on a funnel plot: its label, denominator, value, 95% interval and verdict at 95%."""

    label: str
    n: float
    value: float
    lower: float
    upper: float
    verdict: str  # better, worse, similar or empty (not compared)


def funnel_figure(
    title: str, what: str, points: Sequence[FunnelPoint], p0: float, denominator: str, unit: str, n: int
) -> str:
    """An accessible SVG funnel plot (title, description, data table) of proportions around ``p0``.

    ``what`` says what the points are ("18 CPAs over the whole release"), ``unit`` heads the data
    table's first column and ``n`` keeps the SVG's ids unique on a page."""
    width, height, left, bottom, top_pad = 640, 320, 72, 56, 12
    sizes = [p.n for p in points]
    values = [p.value for p in points]
    lo_n, hi_n = max(min(sizes) * 0.8, 1.0), max(sizes) * 1.1
    limits = [p0 + sign * Z[level] * math.sqrt(p0 * (1 - p0) / lo_n) for level in Z for sign in (-1, 1)]
    y_min, y_max = max(min(values + limits + [p0]) - 0.01, 0.0), min(max(values + limits + [p0]) + 0.01, 1.0)

    def x(size: float) -> float:
        return left + (width - left - 12) * (size - lo_n) / ((hi_n - lo_n) or 1)

    def y(value: float) -> float:
        return height - bottom - (height - bottom - top_pad) * (value - y_min) / ((y_max - y_min) or 1)

    grid = [lo_n + (hi_n - lo_n) * i / 60 for i in range(61)]
    lines = []
    for level, dash in (("95", "6 4"), ("99.8", "2 3")):
        for sign in (-1, 1):
            edge = [min(max(p0 + sign * Z[level] * math.sqrt(p0 * (1 - p0) / s), y_min), y_max) for s in grid]
            path = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in zip(grid, edge, strict=True))
            lines.append(f"<polyline points='{path}' fill='none' stroke='#0b0c0c' stroke-dasharray='{dash}'/>")
    marks, counts = [], {}
    for p in points:
        verdict = p.verdict or "not compared"
        counts[verdict] = counts.get(verdict, 0) + 1
        cx, cy = x(p.n), y(p.value)
        shape = {"better": f"M{cx:.1f},{cy - 6:.1f} l6,10 h-12 z", "worse": f"M{cx:.1f},{cy + 6:.1f} l6,-10 h-12 z"}
        mark = (f"<path d='{shape[verdict]}' fill='#0b0c0c'>" if verdict in shape
                else f"<circle cx='{cx:.1f}' cy='{cy:.1f}' r='4' fill='#1d70b8'>")  # fmt: skip
        close = "</path>" if verdict in shape else "</circle>"
        marks.append(f"{mark}<title>{_e(p.label)}: {p.value:.1%} of {p.n:,.0f} ({_e(verdict)})</title>{close}")
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    desc = (
        f"Funnel plot of {what}: the benchmark is {p0:.1%}; dashed lines are the 95% limits and dotted lines the "
        f"99.8% limits around it. At 95%: {summary} (triangles up: better; triangles down: worse; circles: "
        "similar). Verdicts allow for rounding. The data is in the table below the chart."
    )
    axis = (
        f"<line x1='{left}' y1='{height - bottom}' x2='{width - 12}' y2='{height - bottom}' stroke='#0b0c0c'/>"
        f"<line x1='{left}' y1='{top_pad}' x2='{left}' y2='{height - bottom}' stroke='#0b0c0c'/>"
        f"<line x1='{left}' y1='{y(p0):.1f}' x2='{width - 12}' y2='{y(p0):.1f}' stroke='#0b0c0c'/>"
        f"<text x='{left - 6}' y='{y(y_max) + 4:.1f}' font-size='20' text-anchor='end'>{y_max:.0%}</text>"
        f"<text x='{left - 6}' y='{y(y_min):.1f}' font-size='20' text-anchor='end'>{y_min:.0%}</text>"
        f"<text x='{left}' y='{height - 30}' font-size='20'>{lo_n:,.0f}</text>"
        f"<text x='{width - 12}' y='{height - 30}' font-size='20' text-anchor='end'>{hi_n:,.0f}</text>"
        f"<text x='{(left + width) / 2:.0f}' y='{height - 4}' font-size='20' text-anchor='middle'>"
        f"{_e(denominator)} (denominator)</text>"
    )
    svg = (
        f"<svg viewBox='0 0 {width} {height}' role='img' aria-labelledby='funnel{n}-t funnel{n}-d' "
        f"xmlns='http://www.w3.org/2000/svg'><title id='funnel{n}-t'>{_e(title)}</title>"
        f"<desc id='funnel{n}-d'>{_e(desc)}</desc>{axis}{''.join(lines)}{''.join(marks)}</svg>"
    )
    body = "".join(
        f"<tr><td>{_e(p.label)}</td><td class='n'>{int(p.n):,}</td><td class='n'>{p.value:.1%}</td>"
        f"<td class='n'>{p.lower:.1%} to {p.upper:.1%}</td><td>{_e(p.verdict)}</td></tr>"
        for p in points
    )
    table = (
        f"<div class='scroll' role='region' aria-label='{_e(title)}, data' tabindex='0'><table><caption>{_e(title)}"
        f"</caption><thead><tr><th scope='col'>{_e(unit)}</th><th scope='col' class='n'>Denominator</th>"
        "<th scope='col' class='n'>Value</th><th scope='col' class='n'>95% interval</th>"
        f"<th scope='col'>Against the benchmark (95%)</th></tr></thead><tbody>{body}</tbody></table></div>"
    )
    data = f"<details><summary>Data for this chart</summary>{table}</details>"
    return f"<figure>{svg}<figcaption>{_e(desc)}</figcaption></figure>{data}"


def _disclosure(d: dict[str, Any]) -> str:
    sdc = d.get("opendata:disclosure") or {}
    rules = sdc.get("rules") or {}
    total = sdc.get("total") or {}
    parts = []
    if rules.get("threshold"):
        parts.append(
            f"To protect the people these figures count, any count from 1 to {rules['threshold'] - 1} is hidden "
            "and shown as [c]. Some larger counts are hidden too, where a hidden count could otherwise be "
            "worked out from the totals."
        )
    base = (rules.get("rounding") or {}).get("base")
    if base:
        parts.append(
            f"Every other count is rounded to the nearest multiple of {base}, so figures may not add up exactly."
        )
    if isinstance(total.get("cells"), int) and isinstance(total.get("suppressed"), int):
        parts.append(
            f"Of {total['cells']:,} figures in this release, {total['suppressed']:,} are hidden "
            f"({total.get('primary', 0):,} small counts and {total.get('secondary', 0):,} counts hidden to "
            "protect them)."
        )
    if total.get("audit_ok"):
        parts.append(
            "Before release, an attacker audit checked that no hidden count can be worked out from what is published."
        )
    return "".join(f"<p>{_e(p)}</p>" for p in parts) or "<p>No figures were hidden.</p>"


def _revisions(d: dict[str, Any]) -> str:
    revisions = d.get("opendata:revisions")
    if not revisions:
        return "<p>This version revises no figures of an earlier version.</p>"
    items = [
        f"{c['table']} ({', '.join(f'{k}={v}' for k, v in c['key'].items())}): "
        f"{c['measure']} {c['old']} → {c['new']} [r]"
        for c in revisions.get("cells", [])[:50]
    ]
    return (
        f"<p>This version corrects {revisions['count']:,} figure(s) of version {_e(revisions['previous'])}.</p>"
        + _list(items)
    )


def _downloads(d: dict[str, Any]) -> str:
    rows = []
    for r in d["resources"]:
        if "path" not in r:
            continue
        size = f"{r['bytes']:,} bytes" if isinstance(r.get("bytes"), int) else ""
        digest = str(r.get("hash", "")).removeprefix("sha256:")
        rows.append(
            f"<tr><td><a href='{_e(r['path'])}'>{_e(r.get('title') or r['name'])}</a></td>"
            f"<td>{_e(str(r.get('format', '')).upper())}</td><td class='n'>{_e(size)}</td>"
            f"<td><code>{_e(digest)}</code></td></tr>"
        )
    rows.append("<tr><td><a href='datapackage.json'>Package descriptor (every file, its size and hash)</a></td>"
                "<td>JSON</td><td class='n'></td><td></td></tr>")  # fmt: skip
    return (
        "<div class='scroll' role='region' aria-label='Downloads' tabindex='0'><table><caption>Files in this version"
        "</caption><thead><tr><th scope='col'>File</th><th scope='col'>Format</th><th scope='col' class='n'>Size</th>"
        f"<th scope='col'>SHA-256</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _citation(d: dict[str, Any]) -> str:
    people = d.get("contributors") or []
    publisher = next((c["title"] for c in people if "publisher" in c.get("roles", [])), "the publisher")
    return (
        f"{publisher} ({d['created'][:4]}). {d['title']}, version {d['version']} (package {d['name']}, id {d['id']})."
    )


def _licence(d: dict[str, Any]) -> str:
    licences = d.get("licenses") or []
    if not licences:
        return ""
    lic = licences[0]
    name = _e(lic.get("title") or lic.get("name", ""))
    return (
        f"<p>Published under the <a href='{_e(lic['path'])}'>{name}</a>.</p>" if lic.get("path") else f"<p>{name}</p>"
    )


# --- shared -----------------------------------------------------------------------------------------


def _document(title: str, nav: str, main: str, footer: str) -> bytes:
    page = (
        "<!DOCTYPE html>\n<html lang='en-GB'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>"
        "<a class='skip' href='#main'>Skip to main content</a>"
        f"<header><nav aria-label='Site'>{nav or '<span>Releases</span>'}</nav></header>"
        f"<main id='main'>\n{main}\n</main><footer>{footer}<p>Made with opendata.</p></footer></body></html>\n"
    )
    return page.encode("utf-8")


def _list(items: Iterable[str]) -> str:
    return "<ul>" + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _when(stamp: str) -> str:
    try:
        moment: datetime = parse_time(stamp)
    except (ValueError, TypeError):
        return str(stamp)
    return moment.strftime("%-d %B %Y, %H:%M UTC")
