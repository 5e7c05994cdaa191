"""protect_cells_file: base-cells CSV + hierarchy CSVs in, full and public CSVs out, clear errors."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from disclosure import DisclosureError, Grid, Hierarchy, Rules, audit
from disclosure.cells import protect_cells_file

REGION = "code,parent\nNorth,Total\nN1,North\nN2,North\nSouth,Total\nS1,South\nS2,South\nS3,South\n"
REGION_PARENTS = {"North": "Total", "N1": "North", "N2": "North", "South": "Total", "S1": "South", "S2": "South"}
REGION_PARENTS["S3"] = "South"


def _cells_csv() -> str:
    """sex (flat) x region (depth 2) x year (flat); small counts, one absent combination (a zero)."""
    rng = np.random.default_rng(7)
    lines = ["sex,region,year,count"]
    for sex in ("M", "F"):
        for region in ("N1", "N2", "S1", "S2", "S3"):
            for year in ("2024", "2023"):
                if (sex, region, year) == ("F", "S3", "2023"):
                    continue
                lines.append(f"{sex},{region},{year},{int(rng.choice([2, 3, 5, 12, 20, 31, 47]))}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cells.csv").write_text(_cells_csv())
    (tmp_path / "region.csv").write_text(REGION)
    return tmp_path


def _dims() -> dict[str, Hierarchy]:
    """Built independently of the module under test, in the order the output should follow."""
    return {
        "sex": Hierarchy.flat("sex", ["F", "M"]),
        "region": Hierarchy.from_parents("region", REGION_PARENTS),
        "year": Hierarchy.flat("year", ["2023", "2024"]),
    }


DIMS = ["sex", "region=region.csv", "year"]


def _run(workdir: Path, **kw):
    kw.setdefault("out", workdir / "out.csv")
    kw.setdefault("public", workdir / "public.csv")
    return protect_cells_file(workdir / "cells.csv", kw.pop("dims", DIMS), "count", **kw)


def test_full_table_has_all_totals_statuses_and_is_additive(workdir: Path) -> None:
    result = _run(workdir)
    out = pd.read_csv(workdir / "out.csv", dtype=str, keep_default_na=False)
    assert list(out.columns) == ["sex", "region", "year", "count", "status"]
    dims = _dims()
    grid = Grid.of(dims)
    assert len(out) == grid.size == 3 * 8 * 3
    # hierarchy order: exactly the grid's cell order
    expected = grid.codes_frame()
    assert out[["sex", "region", "year"]].equals(expected.astype(str))
    assert set(out["status"]) == {"published", "primary", "secondary"}
    values = out["count"].astype(int).to_numpy()
    grid.check_additive(values)  # raises if any total differs from the sum of its children
    base = pd.read_csv(workdir / "cells.csv", dtype={"year": str})
    assert values[0] == base["count"].sum()
    absent = out[(out.sex == "F") & (out.region == "S3") & (out.year == "2023")]
    assert absent["count"].tolist() == ["0"]
    small = (values > 0) & (values < 10)
    assert ((out["status"] == "primary").to_numpy() == small).all()
    assert result.counts["primary"] == int(small.sum())
    assert result.audit.ok


@pytest.mark.parametrize("rounding_base", [None, 5])
def test_public_table_hides_exactly_suppressed_cells_and_passes_audit(workdir: Path, rounding_base: int | None) -> None:
    _run(workdir, rounding_base=rounding_base)
    out = pd.read_csv(workdir / "out.csv", dtype=str, keep_default_na=False)
    public = pd.read_csv(workdir / "public.csv", dtype=str, keep_default_na=False)
    assert list(public.columns) == ["sex", "region", "year", "count"]
    assert public[["sex", "region", "year"]].equals(out[["sex", "region", "year"]])
    hidden = public["count"] == "[c]"
    assert (hidden == (out["status"] != "published")).all()
    shown = public.loc[~hidden, "count"].astype(int)
    truth = out.loc[~hidden, "count"].astype(int)
    if rounding_base is None:
        assert (shown == truth).all()
    else:
        assert (shown % 5 == 0).all() and ((shown - truth).abs() <= 2).all()
    frame = public[["sex", "region", "year"]].copy()
    frame["published"] = pd.array([None if v == "[c]" else int(v) for v in public["count"]], dtype="Int64")
    frame["status"] = out["status"]  # only "primary" needs protection width
    report = audit(frame, _dims(), rules=Rules(threshold=10, rounding_base=rounding_base))
    assert report.ok, [f.describe() for f in report.failures]
    assert report.checked == int((out["status"] == "primary").sum())


def test_deterministic_and_atomic(workdir: Path) -> None:
    _run(workdir, rounding_base=5)
    first = ((workdir / "out.csv").read_bytes(), (workdir / "public.csv").read_bytes())
    # row order of the input must not matter either
    lines = (workdir / "cells.csv").read_text().splitlines()
    (workdir / "cells.csv").write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")
    _run(workdir, rounding_base=5)
    second = ((workdir / "out.csv").read_bytes(), (workdir / "public.csv").read_bytes())
    assert first == second
    assert b"\r" not in first[0] + first[1]
    assert sorted(p.name for p in workdir.iterdir()) == ["cells.csv", "out.csv", "public.csv", "region.csv"]


def test_public_is_optional_and_out_dir_is_created(workdir: Path) -> None:
    _run(workdir, out=workdir / "sub" / "out.csv", public=None)
    assert (workdir / "sub" / "out.csv").exists()
    assert not (workdir / "public.csv").exists()


def _edit_cells(workdir: Path, old: str, new: str) -> None:
    path = workdir / "cells.csv"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("setup", "kwargs", "needles"),
    [
        (lambda w: (w / "cells.csv").unlink(), {}, ["cells.csv", "does not exist"]),
        (lambda w: None, {"dims": ["sex", "region=region.csv", "age"]}, ["cells.csv", "'age'"]),
        (lambda w: _edit_cells(w, "count", "n"), {}, ["cells.csv", "'count'"]),
        (lambda w: None, {"dims": ["sex", "region=nowhere.csv", "year"]}, ["nowhere.csv", "does not exist"]),
        (lambda w: (w / "region.csv").write_text("id,up\nN1,Total\n"), {}, ["region.csv", "code", "parent"]),
        (lambda w: _edit_cells(w, "S3", "S9"), {}, ["cells.csv", "region.csv", "'S9'", "'region'"]),
        (lambda w: _edit_cells(w, "S3", "South"), {}, ["cells.csv", "'South'", "base cells"]),
        (lambda w: _edit_cells(w, "M,N1", "Total,N1"), {}, ["cells.csv", "'Total'", "'sex'", "base cells"]),
        (lambda w: _edit_cells(w, "M,N1,2024,", "M,N1,2024,-"), {}, ["cells.csv", "'count'", "negative", "line 2"]),
        (lambda w: _edit_cells(w, "M,N1,2024,", "M,N1,2024,1.5"), {}, ["cells.csv", "'count'", "'1.5", "line 2"]),
        (lambda w: _edit_cells(w, "M,N1,2024,", "M,N1,2024,x"), {}, ["cells.csv", "'count'", "line 2"]),
        (lambda w: _edit_cells(w, "M,N1,2023,", "M,N1,2024,"), {}, ["cells.csv", "duplicate", "N1", "lines [2, 3]"]),
        (lambda w: (w / "region.csv").write_text("code,parent\nN1,All\n"), {}, ["region.csv", "'All'", "'Total'"]),
        (lambda w: None, {"dims": ["sex", "sex"]}, ["'sex'", "more than once"]),
        (lambda w: None, {"threshold": 0}, ["threshold"]),
        (lambda w: None, {"out": Path("cells.csv")}, ["cells.csv", "overwrite"]),
    ],
    ids=[
        "missing-cells",
        "unknown-dim",
        "missing-value",
        "missing-hierarchy",
        "hierarchy-columns",
        "code-not-in-hierarchy",
        "non-leaf",
        "total-in-flat",
        "negative",
        "non-integer",
        "text",
        "duplicate",
        "bad-parent",
        "dim-twice",
        "bad-rules",
        "out-is-input",
    ],
)
def test_errors_name_the_culprit(workdir: Path, setup, kwargs: dict, needles: list[str]) -> None:
    setup(workdir)
    with pytest.raises(DisclosureError) as info:
        _run(workdir, **kwargs)
    message = str(info.value)
    for needle in needles:
        assert needle in message, (needle, message)
    assert not (workdir / "out.csv").exists()


def test_magnitude_rules_from_contributions_through_the_cli(tmp_path: Path) -> None:
    """--contributor: one row per contribution; a cell one firm dominates is primary and hidden."""
    import subprocess
    import sys

    lines = ["region,sector,firm,payments"]
    for region in ("N", "S"):
        for sector in ("a", "b", "c"):
            lines += [f"{region},{sector},{region}{sector}{k},{100 + 10 * k}" for k in range(4)]
    lines.append("N,a,giant,50000")  # N/a: one firm holds 99% of the cell
    (tmp_path / "records.csv").write_text("\n".join(lines) + "\n")
    args = ["records.csv", "--dim", "region", "--dim", "sector", "--value", "payments", "--contributor", "firm"]
    args += ["--threshold", "3", "--dominance", "1,80", "--p-percent", "10", "--out", "full.csv"]
    run = subprocess.run([sys.executable, "-m", "opendata.cli", "protect", *args], cwd=tmp_path, capture_output=True)
    assert run.returncode == 0, run.stderr
    full = pd.read_csv(tmp_path / "full.csv", dtype=str).set_index(["region", "sector"])
    assert full.loc[("N", "a"), "status"] == "primary"
    assert full.loc[("N", "a"), "payments"] == str(50000 + 100 + 110 + 120 + 130)
    assert (full["status"] != "published").sum() >= 4  # the smallest safe pattern is a rectangle
    bad = subprocess.run(
        [sys.executable, "-m", "opendata.cli", "protect", *args[:7], "--p-percent", "10", "--out", "x.csv"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "contributor" in bad.stderr and "Traceback" not in bad.stderr


def _cli(tmp_path: Path, *args: str):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "opendata.cli", "protect", *args], cwd=tmp_path, capture_output=True, text=True
    )


@pytest.mark.slow
def test_cli_parity_singletons_cost_and_cells_that_must_be_published(workdir: Path) -> None:
    """`opendata protect --singletons --cost --publish`: what the library can say, the CLI can."""
    base = ["cells.csv", "--dim", "sex", "--dim", "region=region.csv", "--dim", "year", "--value", "count"]
    hidden = {}
    for singletons in ("protect", "ignore"):
        for cost in ("value", "cells", "log"):
            out = f"{singletons}-{cost}.csv"
            run = _cli(workdir, *base, "--singletons", singletons, "--cost", cost, "--out", out)
            assert run.returncode == 0, run.stderr
            full = pd.read_csv(workdir / out, dtype={"count": int})
            hidden[singletons, cost] = full.loc[full["status"] != "published", "count"]
            frame = full[["sex", "region", "year", "status"]].copy()
            frame["published"] = full["count"].astype("Int64").where(full["status"] == "published")
            assert audit(frame, _dims(), rules=Rules(threshold=10)).ok
    assert hidden["ignore", "value"].sum() <= hidden["protect", "value"].sum()  # fewer intruders, no more hidden

    # the cheapest pattern hides a national margin; requiring it published moves the pattern elsewhere
    full = pd.read_csv(workdir / "protect-value.csv", dtype={"count": int})
    margins = full[(full["sex"] == "Total") & (full["status"] == "secondary")]
    target = (
        margins.iloc[0] if len(margins) else full[(full["sex"] == "Total") & (full["status"] == "published")].iloc[0]
    )
    (workdir / "publish.csv").write_text(f"sex,region,year\nTotal,{target['region']},{target['year']}\n")
    run = _cli(workdir, *base, "--cost", "value", "--publish", "publish.csv", "--out", "kept.csv")
    assert run.returncode == 0, run.stderr
    kept = pd.read_csv(workdir / "kept.csv", dtype=str).set_index(["sex", "region", "year"])
    assert kept.loc[("Total", target["region"], target["year"]), "status"] == "published"

    primary = full[full["status"] == "primary"].iloc[0]
    (workdir / "bad.csv").write_text(f"sex,region,year\n{primary['sex']},{primary['region']},{primary['year']}\n")
    refused = _cli(workdir, *base, "--publish", "bad.csv", "--out", "x.csv")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr and primary["region"] in refused.stderr
    (workdir / "unknown.csv").write_text("sex,region,year\nX,N1,2024\n")
    refused = _cli(workdir, *base, "--publish", "unknown.csv", "--out", "x.csv")
    assert refused.returncode == 1 and "row 2" in refused.stderr and "not a cell of the table" in refused.stderr


def test_cli_spare_headlines_keeps_the_national_figures(tmp_path: Path) -> None:
    """`opendata protect --spare-headlines`: a sparse first month whose cheapest cubes run through
    the national cells (as in test_disclosure_hypercube); with the flag the national row stays
    published, and both patterns pass the audit."""
    (tmp_path / "provider.csv").write_text("code,parent\nC1,Total\nC2,Total\nS1,C1\nS2,C1\nS3,C2\nS4,C2\nS5,C2\n")
    counts = {"m1": [1, 0, 6, 6, 0], "m2": [20, 25, 30, 12, 18], "m3": [22, 30, 28, 15, 16], "m4": [25, 21, 35, 14, 19]}
    rows = [f"{m},S{i + 1},{v}" for m, vs in counts.items() for i, v in enumerate(vs)]
    (tmp_path / "cells.csv").write_text("month,provider,n\n" + "\n".join(rows) + "\n")
    dims = {
        "month": Hierarchy.flat("month", list(counts)),
        "provider": Hierarchy.from_parents(
            "provider", {"C1": "Total", "C2": "Total", "S1": "C1", "S2": "C1", "S3": "C2", "S4": "C2", "S5": "C2"}
        ),
    }
    national = {}
    for flag in ([], ["--spare-headlines"]):
        base = ["cells.csv", "--dim", "month", "--dim", "provider=provider.csv", "--value", "n", "--method", "fast"]
        run = _cli(tmp_path, *base, *flag, "--out", "out.csv")
        assert run.returncode == 0, run.stderr
        full = pd.read_csv(tmp_path / "out.csv", dtype={"n": int})
        frame = full[["month", "provider", "status"]].copy()
        frame["published"] = full["n"].astype("Int64").where(full["status"] == "published")
        assert audit(frame, dims, rules=Rules(threshold=10)).ok
        national[bool(flag)] = int(((full["status"] == "secondary") & (full["provider"] == "Total")).sum())
    assert national == {True: 0, False: 2}
