"""Tiny real release specs shared by the tests: areas and primes by month (package, diff, load), and
primes alone (catalogue, signing, sync)."""

from __future__ import annotations

from pathlib import Path

from opendata.spec import ReleaseSpec, load_spec

SPEC_YAML = """
name: {name}
title: Tiny MI
description: A tiny release for tests.
kind: management information
keywords: [test]
licenses:
  - name: OGL-UK-3.0
    path: https://www.nationalarchives.gov.uk/doc/open-government-licence/version/3/
    title: Open Government Licence v3.0
publisher: {{title: Department for Work and Pensions}}
contributors:
  - {{title: Department for Work and Pensions, roles: [publisher]}}
sources:
  - {{title: Provider returns}}
input:
  kind: records
  primary_key: [pid]
  fields:
    - {{name: pid, type: string, required: true, description: id}}
    - {{name: referral_date, type: date, required: true, description: referred}}
    - {{name: cpa, type: string, required: true, codelist: codelists/cpa.csv, description: area}}
    - {{name: prime, type: string, required: true, codelist: codelists/providers.csv, level: prime,
       description: prime}}
    - {{name: job_start_date, type: date, description: job start}}
dimensions:
  - {{name: month, title: Month, description: Month of the event., period: month,
     total: {{code: Total, label: All months}}}}
  - {{name: provider, title: Provider, description: "Area, then prime.", levels: [cpa, prime],
     codelist: codelists/providers.csv, total: {{code: Total, label: Great Britain}}}}
measures:
  - {{name: referrals, title: Referrals, description: People referred., unit: people, aggregate: count,
     field: referral_date, period: referral_date}}
  - {{name: job_starts, title: Job starts, description: People starting a job., unit: people,
     aggregate: count, field: job_start_date, period: job_start_date}}
tables:
  - name: {by_month}
    title: Referrals and job starts by provider and month
    dimensions: [month, provider]
    measures: [referrals, job_starts]
  - name: {totals}
    title: Referrals by provider
    dimensions: [provider]
    measures: [referrals]
disclosure:
  threshold: 10
  protection: 10
{rounding}"""

OGL = "https://www.nationalarchives.gov.uk/doc/open-government-licence/version/3/"
PRIMES_YAML = """
name: {name}
title: {title}
description: Referrals by provider.
kind: management information
keywords: [employment, work programme]
licenses:
  - name: OGL-UK-3.0
    path: {ogl}
    title: Open Government Licence v3.0
publisher: {{title: Department for Work and Pensions, email: stats@dwp.example}}
contributors:
  - {{title: Department for Work and Pensions, roles: [publisher], email: stats@dwp.example,
     path: "https://www.gov.uk/government/organisations/department-for-work-pensions"}}
sources:
  - {{title: Provider returns}}
input:
  kind: records
  primary_key: [pid]
  fields:
    - {{name: pid, type: string, required: true, description: id}}
    - {{name: referral_date, type: date, required: true, description: referred}}
    - {{name: prime, type: string, required: true, codelist: codelists/providers.csv, level: prime,
       description: prime}}
dimensions:
  - {{name: provider, title: Provider, description: Prime provider., levels: [prime],
     codelist: codelists/providers.csv,
     total: {{code: Total, label: Great Britain}}}}
measures:
  - {{name: referrals, title: Referrals, description: People referred., unit: people, aggregate: count,
     field: referral_date, period: referral_date}}
tables:
  - name: provider-totals
    title: Referrals by provider
    dimensions: [provider]
    measures: [referrals]
disclosure:
  threshold: 10
"""
PRIMES = "code,label,parent,level\nA1,Prime one,Total,prime\nB1,Prime two,Total,prime\n"

CPA = "code,label,parent\nA,Area A,Total\nB,Area B,Total\n"
PROVIDERS = 'code,label,parent,level\nA,Area A,Total,cpa\nA1,"Prime, one",A,prime\nA2,Prime two,A,prime\n'
PROVIDERS += "B,Area B,Total,cpa\nB1,Prime three,B,prime\n"


def write_tiny_spec(
    root: Path,
    name: str = "tiny-mi",
    tables: tuple[str, str] = ("provider-by-month", "provider-totals"),
    rounding: int | None = 5,
    cpa: str = CPA,
    providers: str = PROVIDERS,
) -> ReleaseSpec:
    """Write the areas-and-primes spec and its code lists under ``root`` and load it with the real loader."""
    (root / "codelists").mkdir(parents=True, exist_ok=True)
    (root / "codelists" / "cpa.csv").write_text(cpa, encoding="utf-8")
    (root / "codelists" / "providers.csv").write_text(providers, encoding="utf-8")
    text = SPEC_YAML.format(
        name=name,
        by_month=tables[0],
        totals=tables[1],
        rounding=f"  rounding: {{base: {rounding}}}\n" if rounding else "",
    )
    (root / "spec.yaml").write_text(text, encoding="utf-8")
    return load_spec(root / "spec.yaml")


def write_primes_spec(root: Path, name: str = "tiny-mi", title: str = "Tiny MI") -> ReleaseSpec:
    """Write the primes-only spec (one table, three cells) under ``root`` and load it."""
    (root / "codelists").mkdir(parents=True, exist_ok=True)
    (root / "codelists" / "providers.csv").write_text(PRIMES, encoding="utf-8")
    (root / "spec.yaml").write_text(PRIMES_YAML.format(name=name, title=title, ogl=OGL), encoding="utf-8")
    return load_spec(root / "spec.yaml")
