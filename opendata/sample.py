"""Synthetic Work Programme subcontractor MI, one row per referral.

Real subcontractor MI cannot leave DWP, yet every part of the pipeline (validation, aggregation,
disclosure control, release) needs realistic input to be exercised and benchmarked. This module
makes that input: record-level MI shaped like the Work Programme (2011–2017), with the real
contract package areas (CPAs) but invented provider codes and names, published-looking payment
group mixes and two-year job outcome rates, and very skewed subcontractor sizes so that, as in
real supply chains, many cells are small.

Everything is a pure function of its arguments: the same seed gives the same table and the
same bytes on disk. The provider register (the code lists) depends only on its own seed, so a
sample drawn with any seed uses the committed code lists in `specs/codelists/`.
"""

from __future__ import annotations

import csv
import io
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from opendata.complaints import CATEGORIES, OUTCOMES
from opendata.css import EVENTS

REGISTER_SEED = 2011
TOTAL = "Total"

# The 18 Work Programme contract package areas. Names are the areas' own; the CPA01..CPA18
# numbering is this project's, and the relative sizes (referral shares) are invented but
# roughly follow working-age population.
CPAS: tuple[tuple[str, str, float], ...] = (
    ("CPA01", "East of England", 6.0),
    ("CPA02", "East Midlands", 6.0),
    ("CPA03", "London East", 8.0),
    ("CPA04", "London West", 7.0),
    ("CPA05", "North East", 5.0),
    ("CPA06", "Merseyside, Halton, Cumbria and Lancashire", 7.0),
    ("CPA07", "Greater Manchester, Cheshire and Warrington", 7.0),
    ("CPA08", "Scotland", 8.0),
    ("CPA09", "Surrey, Sussex and Kent", 5.0),
    ("CPA10", "Thames Valley, Hampshire and Isle of Wight", 4.0),
    ("CPA11", "Devon and Cornwall, Dorset and Somerset", 3.0),
    ("CPA12", "Gloucestershire, Wiltshire and West of England", 3.0),
    ("CPA13", "Wales", 6.0),
    ("CPA14", "Birmingham, Solihull and the Black Country", 6.0),
    ("CPA15", "Coventry, Warwickshire, Staffordshire and the Marches", 4.0),
    ("CPA16", "North East Yorkshire and the Humber", 4.0),
    ("CPA17", "West Yorkshire", 5.0),
    ("CPA18", "South Yorkshire", 3.0),
)
# CPAs with three prime contracts (the rest have two): 4 x 3 + 14 x 2 = 40 contracts.
THREE_PRIME_CPAS = frozenset({"CPA01", "CPA03", "CPA07", "CPA14"})
# IB/IS volunteers (PG8) were England only.
NON_ENGLAND_CPAS = frozenset({"CPA08", "CPA13"})


@dataclass(frozen=True)
class PaymentGroup:
    """What the generator needs to know about one payment group, and where the numbers come from."""

    code: str
    label: str
    share: float  # share of referrals in a general supply chain (invented, JSA the bulk)
    mandatory: float  # probability a referral is mandatory (basis_for_referral)
    age: tuple[float, float, float, float]  # 18-24, 25-34, 35-49, 50+
    male: float
    disabled: float
    attach: float  # probability of attaching (about 94% overall, as published)
    attach_scale: float  # gamma(2, scale) days from referral to attachment
    outcome_weeks: int  # weeks in work before the job outcome (13 or 26)
    p_start: float  # probability of a job start, calibrated to target_2y
    p_sustain: float  # probability a job start becomes a job outcome
    max_sustainments: int  # cap on four-weekly sustainment payments
    target_2y: float  # two-year job outcome rate aimed at (published where known)


# Two-year job outcome targets: PG1 36.4%, PG2 31.7%, PG6 15.1%, PG7 5.4% are the published
# rates (wp_published_figures.csv); the others are plausible guesses. p_start is calibrated so
# that a referral cohort observed for two years lands on target_2y.
PAYMENT_GROUPS: tuple[PaymentGroup, ...] = (
    PaymentGroup("PG1", "JSA claimants aged 18-24", 0.200, 1.00, (1.00, 0.00, 0.00, 0.00),
                 0.68, 0.12, 0.935, 3.2, 26, 0.641, 0.65, 20, 0.364),
    PaymentGroup("PG2", "JSA claimants aged 25+", 0.440, 1.00, (0.00, 0.32, 0.42, 0.26),
                 0.66, 0.18, 0.950, 3.2, 26, 0.575, 0.62, 20, 0.317),
    PaymentGroup("PG3", "JSA 'early access' groups", 0.120, 0.80, (0.35, 0.25, 0.25, 0.15),
                 0.60, 0.20, 0.940, 3.2, 26, 0.469, 0.60, 20, 0.250),
    PaymentGroup("PG4", "JSA ex-IB", 0.010, 1.00, (0.05, 0.20, 0.40, 0.35),
                 0.62, 0.45, 0.940, 3.2, 13, 0.302, 0.62, 26, 0.170),
    PaymentGroup("PG5", "ESA Volunteers", 0.030, 0.00, (0.08, 0.20, 0.38, 0.34),
                 0.52, 0.85, 0.975, 3.2, 13, 0.241, 0.60, 26, 0.130),
    PaymentGroup("PG6", "New ESA claimants", 0.150, 0.85, (0.12, 0.22, 0.36, 0.30),
                 0.53, 0.80, 0.935, 3.2, 13, 0.279, 0.60, 26, 0.151),
    PaymentGroup("PG7", "ESA Ex-IB", 0.030, 0.55, (0.03, 0.12, 0.40, 0.45),
                 0.56, 0.90, 0.935, 3.2, 13, 0.117, 0.50, 26, 0.054),
    PaymentGroup("PG8", "IB/IS (England only)", 0.005, 0.00, (0.06, 0.20, 0.40, 0.34),
                 0.45, 0.60, 0.975, 3.2, 13, 0.139, 0.52, 26, 0.075),
    PaymentGroup("PG9", "JSA prison leavers", 0.015, 1.00, (0.30, 0.38, 0.26, 0.06),
                 0.90, 0.25, 0.880, 5.0, 26, 0.398, 0.52, 20, 0.170),
)  # fmt: skip
PG_CODES = tuple(g.code for g in PAYMENT_GROUPS)
AGE_BANDS = ("18-24", "25-34", "35-49", "50+")

# Subcontractor profiles: most deliver to everyone; some specialise (health and disability,
# offenders, young people), which concentrates a few payment groups in small supply chains.
_PROFILE_P = (0.70, 0.15, 0.08, 0.07)  # general, health, offender, youth (non-own-delivery)
_PROFILE_MIX = np.array(
    [
        [g.share for g in PAYMENT_GROUPS],
        [0.03, 0.07, 0.03, 0.02, 0.15, 0.45, 0.18, 0.05, 0.02],
        [0.10, 0.35, 0.05, 0.00, 0.00, 0.05, 0.00, 0.00, 0.45],
        [0.60, 0.05, 0.30, 0.00, 0.01, 0.03, 0.00, 0.00, 0.01],
    ]
)

ACTION_PLAN_RATE = 0.97  # attached participants with an action plan agreed
SUSTAIN_CONTINUE = 0.965  # chance of staying in work for each further four-week period
PROGRAMME_DAYS = 730  # two years on the programme: job starts only happen within it
PROGRAMME_START = np.datetime64("2011-06", "M")

COLUMNS = (
    "participant_id",
    "referral_date",
    "cpa",
    "prime_contract",
    "subcontractor",
    "payment_group",
    "referral_type",
    "age_band",
    "gender",
    "disability",
    "attachment_date",
    "action_plan_date",
    "job_start_date",
    "job_outcome_date",
    "sustainment_payments",
)
SCHEMA = pa.schema(
    [
        pa.field("participant_id", pa.string(), nullable=False),
        pa.field("referral_date", pa.date32(), nullable=False),
        pa.field("cpa", pa.string(), nullable=False),
        pa.field("prime_contract", pa.string(), nullable=False),
        pa.field("subcontractor", pa.string(), nullable=False),
        pa.field("payment_group", pa.string(), nullable=False),
        pa.field("referral_type", pa.string(), nullable=False),
        pa.field("age_band", pa.string(), nullable=False),
        pa.field("gender", pa.string(), nullable=False),
        pa.field("disability", pa.string(), nullable=False),
        pa.field("attachment_date", pa.date32()),
        pa.field("action_plan_date", pa.date32()),
        pa.field("job_start_date", pa.date32()),
        pa.field("job_outcome_date", pa.date32()),
        pa.field("sustainment_payments", pa.int32(), nullable=False),
    ]
)
AGGREGATED_SCHEMA = pa.schema(
    [pa.field(name, pa.string(), nullable=False) for name in ("month", *COLUMNS[2:6])]
    + [
        pa.field(name, pa.int64(), nullable=False)
        for name in ("referrals", "attachments", "job_starts", "job_outcomes")
    ]
    + [pa.field("sustainment_payments", pa.int64(), nullable=False)]
)
FILE_STEM = "work-programme-mi"
AGGREGATED_STEM = "work-programme-mi-aggregated"


# --- provider register ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Register:
    """Provider hierarchy plus the hidden traits that shape the sample (sizes, specialism, performance)."""

    prime_codes: tuple[str, ...]
    prime_cpa: np.ndarray  # CPA index of each prime
    sub_codes: tuple[str, ...]
    sub_labels: tuple[str, ...]
    sub_prime: np.ndarray  # prime index of each subcontractor
    sub_share: np.ndarray  # share of all referrals going to each subcontractor (sums to 1)
    sub_profile: np.ndarray  # index into _PROFILE_MIX
    sub_performance: np.ndarray  # multiplier on job start probability, about 1 on average


@cache
def _register(seed: int) -> _Register:
    """Draw the provider hierarchy once per seed; its own RNG keeps it independent of samples."""
    rng = np.random.default_rng(seed)
    cpa_weight = np.array([w for _, _, w in CPAS])
    cpa_weight = cpa_weight / cpa_weight.sum()

    prime_codes: list[str] = []
    prime_cpa: list[int] = []
    prime_share: list[float] = []
    for i, (code, _, _) in enumerate(CPAS):
        k = 3 if code in THREE_PRIME_CPAS else 2
        # Uneven random allocation between the primes of an area.
        split = np.sort(rng.dirichlet(np.full(k, 4.0)))[::-1]
        for s in split:
            prime_codes.append(f"P{len(prime_codes) + 1:02d}")
            prime_cpa.append(i)
            prime_share.append(cpa_weight[i] * s)
    prime_perf = np.clip(rng.lognormal(0.0, 0.12, len(prime_codes)), 0.8, 1.25)

    sub_codes: list[str] = []
    sub_labels: list[str] = []
    sub_prime: list[int] = []
    sub_share: list[float] = []
    sub_profile: list[int] = []
    sub_perf: list[float] = []
    for p, prime in enumerate(prime_codes):
        n_other = int(rng.integers(4, 20))
        own = rng.uniform(0.25, 0.55)  # the prime's own delivery arm
        # Lognormal sizes: most subcontractors small, a few large.
        other = rng.lognormal(0.0, 1.4, n_other)
        shares = np.concatenate([[own], (1 - own) * other / other.sum()])
        profiles = np.concatenate([[0], rng.choice(4, n_other, p=_PROFILE_P)])
        perf = np.clip(rng.lognormal(0.0, 0.15, n_other + 1), 0.75, 1.3) * prime_perf[p]
        for j in range(n_other + 1):
            number = len(sub_codes) + 1
            sub_codes.append(f"S{number:04d}")
            sub_labels.append(f"Prime contract {prime[1:]} own delivery" if j == 0 else f"Subcontractor {number:04d}")
            sub_prime.append(p)
            sub_share.append(prime_share[p] * shares[j])
            sub_profile.append(int(profiles[j]))
            sub_perf.append(float(perf[j]))

    share = np.array(sub_share)
    share = share / share.sum()
    perf_arr = np.array(sub_perf)
    perf_arr = perf_arr / float((share * perf_arr).sum())  # referral-weighted mean of 1
    return _Register(
        prime_codes=tuple(prime_codes),
        prime_cpa=np.array(prime_cpa),
        sub_codes=tuple(sub_codes),
        sub_labels=tuple(sub_labels),
        sub_prime=np.array(sub_prime),
        sub_share=share,
        sub_profile=np.array(sub_profile),
        sub_performance=perf_arr,
    )


def provider_register(seed: int = REGISTER_SEED) -> list[tuple[str, str, str, str]]:
    """Rows `(code, label, parent, level)` of providers.csv: CPAs, prime contracts, subcontractors."""
    reg = _register(seed)
    rows = [(code, label, TOTAL, "cpa") for code, label, _ in CPAS]
    rows += [
        (code, f"Prime contract {code[1:]}", CPAS[reg.prime_cpa[i]][0], "prime_contract")
        for i, code in enumerate(reg.prime_codes)
    ]
    rows += [
        (code, reg.sub_labels[i], reg.prime_codes[reg.sub_prime[i]], "subcontractor")
        for i, code in enumerate(reg.sub_codes)
    ]
    return rows


def _csv_text(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """CSV with `\\n` line endings and minimal quoting, so committed files diff cleanly."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def codelists(seed: int = REGISTER_SEED) -> dict[str, str]:
    """The text of each code list file, keyed by file name; the committed files must equal this."""
    return {
        "cpa.csv": _csv_text(("code", "label", "parent"), [(c, lab, TOTAL) for c, lab, _ in CPAS]),
        "providers.csv": _csv_text(("code", "label", "parent", "level"), provider_register(seed)),
        "payment-groups.csv": _csv_text(
            ("code", "label", "parent"), [(g.code, g.label, TOTAL) for g in PAYMENT_GROUPS]
        ),
    }


def write_codelists(directory: str | Path, seed: int = REGISTER_SEED) -> list[Path]:
    """(Re)write the committed code lists, e.g. `specs/codelists/`, from the generator."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in codelists(seed).items():
        path = directory / name
        _atomic_write(path, lambda tmp, text=text: Path(tmp).write_bytes(text.encode("utf-8")))
        paths.append(path)
    return paths


# --- record-level sample ----------------------------------------------------------------------


def _window(start: str, months: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Business days in the window, the month index of each, and the extract date (days)."""
    if months < 1:
        raise ValueError("months must be at least 1")
    try:
        first = np.datetime64(start, "M")
    except ValueError as exc:
        raise ValueError(f"start must be YYYY-MM, got {start!r}") from exc
    end = first + months  # first month after the window
    days = np.arange(first.astype("datetime64[D]"), end.astype("datetime64[D]"))
    days = days[np.is_busday(days)]
    month = (days.astype("datetime64[M]") - first).astype(np.int64)
    extract = int((end.astype("datetime64[D]") - np.timedelta64(1, "D")).astype(np.int64))
    return days.astype(np.int64), month, extract


def _referral_day_weights(days: np.ndarray, month: np.ndarray, first: np.datetime64) -> np.ndarray:
    """Referrals peak at launch (the stock of long-term claimants) and dip in December."""
    since_launch = np.maximum((first - PROGRAMME_START).astype(np.int64) + month, 0)
    calendar_month = (first.astype(np.int64) + month) % 12  # 0 = January
    w_month = (1.0 + 1.2 * np.exp(-since_launch / 4.0)) * np.where(calendar_month == 11, 0.8, 1.0)
    per_month = np.bincount(month)
    w = w_month / per_month[month]
    return w / w.sum()


def _pick(rng: np.random.Generator, cumulative: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Vectorised categorical draw: row i uses the cumulative probabilities cumulative[rows[i]]."""
    u = rng.random(len(rows))
    cum = cumulative[rows]
    return np.minimum((u[:, None] >= cum[:, :-1]).sum(axis=1), cumulative.shape[1] - 1)


def _strings(values: Sequence[str], index: np.ndarray) -> pa.Array:
    """A plain string column from codes, built by Arrow rather than per-row Python objects."""
    return pa.array(list(values), pa.string()).take(pa.array(index, pa.int32()))


def _dates(days: np.ndarray, present: np.ndarray | None = None) -> pa.Array:
    """A date32 column from day numbers, null where not present."""
    mask = None if present is None else ~present
    return pa.array(days.astype(np.int32), pa.int32(), mask=mask).cast(pa.date32())


def generate(rows: int, seed: int, start: str = "2011-06", months: int = 24) -> pa.Table:
    """Record-level synthetic MI: one row per referral in `months` months from `start`.

    The extract date is the last day of the last month; later events are not yet known (null).
    """
    if rows < 0 or rows > 10_000_000:
        raise ValueError("rows must be between 0 and 10,000,000")
    days, month, extract = _window(start, months)
    reg = _register(REGISTER_SEED)
    rng = np.random.default_rng(seed)
    n = rows

    # Who and where: referral day, subcontractor (which fixes prime and CPA), payment group.
    p_day = _referral_day_weights(days, month, np.datetime64(start, "M"))
    referral = days[rng.choice(len(days), n, p=p_day)]
    ids = rng.choice(100_000_000, n, replace=False)
    order = np.lexsort((ids, referral))
    referral, ids = referral[order], ids[order]

    sub = rng.choice(len(reg.sub_codes), n, p=reg.sub_share)
    prime = reg.sub_prime[sub]
    cpa = reg.prime_cpa[prime]
    non_england = np.array([c in NON_ENGLAND_CPAS for c, _, _ in CPAS])
    mixes = np.concatenate([_PROFILE_MIX, _PROFILE_MIX])  # rows 4..7: outside England
    mixes[4:, PG_CODES.index("PG8")] = 0.0
    mixes = mixes / mixes.sum(axis=1, keepdims=True)
    mix_row = reg.sub_profile[sub] + 4 * non_england[cpa]
    pg = _pick(rng, np.cumsum(mixes, axis=1), mix_row)

    def by_pg(attr: str) -> np.ndarray:
        return np.array([getattr(g, attr) for g in PAYMENT_GROUPS])[pg]

    mandatory = rng.random(n) < by_pg("mandatory")
    age_cum = np.cumsum(np.array([g.age for g in PAYMENT_GROUPS]), axis=1)
    age = _pick(rng, age_cum, pg)
    male = rng.random(n) < by_pg("male")
    disabled = rng.random(n) < by_pg("disabled")

    # Customer journey. Each event is drawn as if fully observed, then cut at the extract date.
    attached = rng.random(n) < by_pg("attach")
    attach = referral + np.minimum(rng.gamma(2.0, by_pg("attach_scale")).astype(np.int64), 60)
    plan_gap = np.where(rng.random(n) < 0.5, 0, rng.gamma(1.5, 4.0, n).astype(np.int64) + 1)
    planned = attached & (rng.random(n) < ACTION_PLAN_RATE)
    plan = attach + plan_gap

    start_gap = rng.gamma(1.3, 160.0, n).astype(np.int64)
    p_start = np.minimum(by_pg("p_start") * reg.sub_performance[sub], 0.97)
    started = attached & (rng.random(n) < p_start) & (start_gap < PROGRAMME_DAYS)
    job_start = attach + start_gap

    # Cumulative time in work may include short breaks, so some outcomes come a little later.
    lag = np.where(rng.random(n) < 0.6, 0, rng.integers(1, 43, n))
    outcome = job_start + 7 * by_pg("outcome_weeks") + lag
    achieved = started & (rng.random(n) < by_pg("p_sustain"))

    in_work_periods = np.minimum(rng.geometric(1.0 - SUSTAIN_CONTINUE, n) - 1, by_pg("max_sustainments"))

    attached &= attach <= extract
    planned &= attached & (plan <= extract)
    started &= attached & (job_start <= extract)
    achieved &= started & (outcome <= extract)
    due = np.maximum((extract - outcome) // 28, 0)
    payments = np.where(achieved, np.minimum(in_work_periods, due), 0).astype(np.int32)

    id_text = pc.binary_join_element_wise("WP", pc.utf8_lpad(pc.cast(pa.array(ids), pa.string()), 8, "0"), "")
    columns = [
        id_text,
        _dates(referral),
        _strings([c for c, _, _ in CPAS], cpa),
        _strings(reg.prime_codes, prime),
        _strings(reg.sub_codes, sub),
        _strings(PG_CODES, pg),
        _strings(("voluntary", "mandatory"), mandatory.astype(np.int8)),
        _strings(AGE_BANDS, age),
        _strings(("female", "male"), male.astype(np.int8)),
        _strings(("no", "yes"), disabled.astype(np.int8)),
        _dates(attach, attached),
        _dates(plan, planned),
        _dates(job_start, started),
        _dates(outcome, achieved),
        pa.array(payments, pa.int32()),
    ]
    return pa.Table.from_arrays(columns, schema=SCHEMA)


# --- journey events (Customer Service Standards) ----------------------------------------------

JOURNEY_STEM = "work-programme-journey"
EVENTS_INDEX = {e: i for i, e in enumerate(EVENTS)}
JOURNEY_SCHEMA = pa.schema(
    [
        pa.field("participant_id", pa.string(), nullable=False),
        pa.field("event", pa.string(), nullable=False),
        pa.field("date", pa.date32(), nullable=False),
    ]
)
REVIEW_WEEKS, LATE_REVIEW_WEEKS = (6.0, 12.5), (13.5, 18.0)  # most gaps inside the 13-week standard ...
LATE_REVIEW = 0.06  # ... but this share of them runs a few weeks past it
EARLY_EXIT = 0.12  # attached participants who leave before the two years are up (moved, stopped claiming)
IN_WORK_OFFERED, IN_WORK_TAKEN_UP = 0.92, 0.60  # of job starts; of offers
EXIT_REPORT_ASKED = 0.80  # exits for which Jobcentre Plus asks for the exit report


def journey(mi: pa.Table, seed: int, start: str = "2011-06", months: int = 24) -> pa.Table:
    """Each participant's journey events (``opendata.journey``), consistent with ``mi`` (``generate``'s
    output for the same ``start`` and ``months``): its referral, attachment, action plan and job start
    dates, plus first contact, reviews every few weeks (some late; prison leavers' later still), in-work
    support offered and taken up, programme exit and the exit report, all cut at the extract date.

    Its own random stream (``seed`` and a tag), so the MI of a seed is the same with or without it."""
    _, _, extract = _window(start, months)
    rng = np.random.default_rng([seed, 16])
    ids = mi.column("participant_id").to_numpy(zero_copy_only=False)
    n = len(ids)

    def day(name: str) -> tuple[np.ndarray, np.ndarray]:
        col = mi.column(name).cast(pa.int32())
        present = col.is_valid().to_numpy(zero_copy_only=False)
        return col.fill_null(0).to_numpy().astype(np.int64), present

    referral, _ = day("referral_date")
    attach, attached = day("attachment_date")
    plan, planned = day("action_plan_date")
    job, started = day("job_start_date")
    # Prison leavers: harder to reach and keep in touch with.
    slow = pc.equal(mi.column("payment_group"), "PG9").to_numpy(zero_copy_only=False)

    contacted = attached | (rng.random(n) < 0.6)
    first_contact = referral + np.where(
        attached, np.floor(rng.random(n) * (attach - referral + 1)), rng.gamma(1.5, 3.0, n)
    ).astype(np.int64)
    early = attached & (rng.random(n) < EARLY_EXIT)
    stay = np.where(early, 30 + (rng.random(n) * (PROGRAMME_DAYS - 30)).astype(np.int64), PROGRAMME_DAYS)
    leave = attach + stay
    exited = attached & (leave <= extract)
    asked = exited & (rng.random(n) < EXIT_REPORT_ASKED)
    requested = leave + rng.integers(0, 6, n)
    sent = requested + np.where(rng.random(n) < 0.1, rng.integers(15, 30, n), rng.integers(1, 14, n))
    offered = started & (rng.random(n) < IN_WORK_OFFERED)
    offer = job + np.where(rng.random(n) < 0.12, rng.integers(8, 21, n), rng.integers(0, 7, n))
    taken = offered & (rng.random(n) < IN_WORK_TAKEN_UP)
    take = offer + rng.integers(0, 11, n)

    who, what, when = [], [], []

    def add(event: str, days: np.ndarray, mask: np.ndarray) -> None:
        keep = mask & (days <= extract)
        who.append(np.flatnonzero(keep))
        what.append(np.full(int(keep.sum()), EVENTS_INDEX[event], dtype=np.int8))
        when.append(days[keep])

    add("referral", referral, np.ones(n, bool))
    add("first_contact", first_contact, contacted)
    add("attachment", attach, attached)
    add("action_plan", plan, planned)
    # Reviews from the action plan to the exit: gaps of REVIEW_WEEKS, some of LATE_REVIEW_WEEKS.
    last = np.where(planned, plan, extract + 1)
    end = np.minimum(np.where(exited, leave, extract), extract)
    while True:
        live = planned & (last < end)
        if not live.any():
            break
        late = rng.random(n) < LATE_REVIEW
        weeks_gap = np.where(late, rng.uniform(*LATE_REVIEW_WEEKS, n), rng.uniform(*REVIEW_WEEKS, n))
        gap = np.ceil(7 * weeks_gap * np.where(slow, 1.1, 1.0)).astype(np.int64)
        last = np.where(live, last + gap, last)
        add("review", last, live & (last <= end))
    add("job_start", job, started)
    add("in_work_support_offered", offer, offered & (offer <= end))
    add("in_work_support_taken_up", take, taken & (take <= end))
    add("programme_exit", leave, exited)
    add("exit_report_requested", requested, asked)
    add("exit_report_sent", sent, asked & (requested <= extract))
    rows, kinds, days = np.concatenate(who), np.concatenate(what), np.concatenate(when)
    order = np.lexsort((kinds, days, rows))  # participant by participant, in time order
    rows, kinds, days = rows[order], kinds[order], days[order]
    return pa.Table.from_arrays(
        [pa.array(ids[rows], pa.string()), _strings(EVENTS, kinds), _dates(days)], schema=JOURNEY_SCHEMA
    )


COMPLAINTS_STEM = "work-programme-complaints"
COMPLAINTS_SCHEMA = pa.schema(
    [pa.field(name, pa.string(), nullable=False) for name in ("complaint_id", "participant_id", "kind")]
    + [pa.field("received", pa.date32(), nullable=False)]
    + [pa.field(name, pa.string(), nullable=False) for name in ("stage", "category")]
    + [pa.field("resolved", pa.date32()), pa.field("outcome", pa.string())]
    + [pa.field("escalated_to_ice", pa.string(), nullable=False)]
)
COMPLAINT_RATE = 0.04  # participants who raise a complaint or give feedback, on average
FEEDBACK_SHARE = 0.2
_STAGE_STARTS = (  # the event each stage starts at, in journey order
    ("pre-programme-engagement", "referral"),
    ("programme-engagement", "attachment"),
    ("pre-work-support", "action_plan"),
    ("in-work-support", "job_start"),
    ("programme-exit", "programme_exit"),
)
_CATEGORY_P = (0.22, 0.30, 0.20, 0.15, 0.05, 0.08)  # opendata.complaints.CATEGORIES
_OUTCOME_P = (0.3, 0.2, 0.5)  # upheld, partly upheld, not upheld


def complaints(mi: pa.Table, events: pa.Table, seed: int, start: str = "2011-06", months: int = 24) -> pa.Table:
    """Complaints and feedback (``opendata.complaints``) of the participants of ``mi`` with the journey
    ``events``: about 4% raise one, some subcontractors' participants more often than others, about a
    stage they reached, within 60 days of its start; most resolved within six weeks, a few taken to the
    Independent Case Examiner. Its own random stream, like the journey's."""
    _, _, extract = _window(start, months)
    rng = np.random.default_rng([seed, 17])
    reg = _register(REGISTER_SEED)
    subs = pc.index_in(mi.column("subcontractor"), pa.array(reg.sub_codes)).to_numpy(zero_copy_only=False)
    rate = COMPLAINT_RATE * rng.gamma(4.0, 0.25, len(reg.sub_codes))[subs]
    raised = np.flatnonzero(rng.random(len(subs)) < rate)
    ids = mi.column("participant_id").to_numpy(zero_copy_only=False)
    frame = events.to_pandas()
    frame["day"] = frame["date"].astype("datetime64[s]").astype(np.int64) // 86400
    first = frame.groupby(["participant_id", "event"])["day"].min().unstack()
    starts = np.column_stack([first.reindex(ids[raised])[event].to_numpy(float) for _, event in _STAGE_STARTS])
    reached = ~np.isnan(starts)
    # A stage each complainant reached, uniformly: the k-th reached stage for a uniform k.
    k = np.floor(rng.random(len(raised)) * reached.sum(axis=1)).astype(np.int64)
    stage = np.argmax(np.cumsum(reached, axis=1) > k[:, None], axis=1)
    received = starts[np.arange(len(raised)), stage].astype(np.int64) + rng.integers(0, 61, len(raised))
    resolved = received + rng.integers(1, 43, len(raised))
    feedback = rng.random(len(raised)) < FEEDBACK_SHARE
    solved = (rng.random(len(raised)) < 0.85) & (resolved <= extract) & ~feedback  # feedback is not resolved
    category = _pick(rng, np.cumsum(np.array([_CATEGORY_P]), axis=1), np.zeros(len(raised), np.int64))
    outcome = _pick(rng, np.cumsum(np.array([_OUTCOME_P]), axis=1), np.zeros(len(raised), np.int64))
    ice = ~feedback & (rng.random(len(raised)) < 0.03)
    keep = received <= extract
    order = np.lexsort((raised, received))
    order = order[keep[order]]
    n = len(order)
    return pa.Table.from_arrays(
        [
            pa.array([f"CF{i:08d}" for i in range(1, n + 1)], pa.string()),
            pa.array(ids[raised[order]], pa.string()),
            _strings(("complaint", "feedback"), feedback[order].astype(np.int8)),
            _dates(received[order]),
            _strings([s for s, _ in _STAGE_STARTS], stage[order]),
            _strings(CATEGORIES, category[order]),
            _dates(resolved[order], solved[order]),
            pa.array(np.where(solved[order], np.array(OUTCOMES)[outcome[order]], None), pa.string()),
            _strings(("no", "yes"), ice[order].astype(np.int8)),
        ],
        schema=COMPLAINTS_SCHEMA,
    )


# --- aggregation ------------------------------------------------------------------------------

_AGGREGATE_SQL = """
WITH events AS (
    SELECT referral_date AS d, cpa, prime_contract, subcontractor, payment_group,
           1 AS r, 0 AS a, 0 AS s, 0 AS o, 0 AS p FROM mi
    UNION ALL
    SELECT attachment_date, cpa, prime_contract, subcontractor, payment_group, 0, 1, 0, 0, 0
    FROM mi WHERE attachment_date IS NOT NULL
    UNION ALL
    SELECT job_start_date, cpa, prime_contract, subcontractor, payment_group, 0, 0, 1, 0, 0
    FROM mi WHERE job_start_date IS NOT NULL
    UNION ALL
    SELECT job_outcome_date, cpa, prime_contract, subcontractor, payment_group,
           0, 0, 0, 1, sustainment_payments
    FROM mi WHERE job_outcome_date IS NOT NULL
)
SELECT strftime(d, '%Y-%m') AS month, cpa, prime_contract, subcontractor, payment_group,
       CAST(sum(r) AS BIGINT) AS referrals,
       CAST(sum(a) AS BIGINT) AS attachments,
       CAST(sum(s) AS BIGINT) AS job_starts,
       CAST(sum(o) AS BIGINT) AS job_outcomes,
       CAST(sum(p) AS BIGINT) AS sustainment_payments
FROM events
GROUP BY ALL
ORDER BY month, cpa, prime_contract, subcontractor, payment_group
"""


def aggregate_sample(table: pa.Table) -> pa.Table:
    """Counts per month × subcontractor × payment group, each event in its own month.

    Only cells with at least one event appear, as in a real pre-aggregated MI return.
    """
    con = duckdb.connect(":memory:")
    try:
        con.register("mi", table)
        result = con.sql(_AGGREGATE_SQL).to_arrow_table()
    finally:
        con.close()
    return pa.Table.from_arrays(
        [result.column(f.name).cast(f.type) for f in AGGREGATED_SCHEMA], schema=AGGREGATED_SCHEMA
    )


# --- writing ----------------------------------------------------------------------------------


def _atomic_write(path: Path, write) -> None:
    """Write via a temp file in the same directory, so readers never see a half-written file."""
    # A fresh name (not mkstemp) so the file gets the usual umask permissions, not 0600.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_table(table: pa.Table, path: Path, fmt: str) -> None:
    """CSV (ISO dates, empty nulls, unquoted codes, `\\n`) or Parquet, byte-stable across runs."""
    if fmt == "csv":
        options = pacsv.WriteOptions(include_header=True, quoting_style="none", quoting_header="none", eol="\n")
        _atomic_write(path, lambda tmp: pacsv.write_csv(table, tmp, write_options=options))
    elif fmt == "parquet":
        _atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    else:
        raise ValueError(f"unknown format {fmt!r}: expected 'csv' or 'parquet'")


def write_sample(
    out_dir: str | Path,
    rows: int,
    seed: int,
    start: str = "2011-06",
    months: int = 24,
    formats: Sequence[str] = ("csv", "parquet"),
    aggregated: bool = False,
    with_journey: bool = False,
) -> list[Path]:
    """Write the sample (and optionally its aggregation, and its journey events with the complaints and
    feedback record) to `out_dir`; returns the paths written."""
    formats = tuple(formats)
    bad = [f for f in formats if f not in ("csv", "parquet")]
    if bad:
        raise ValueError(f"unknown format(s) {', '.join(map(repr, bad))}: expected csv or parquet")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = generate(rows, seed, start=start, months=months)
    outputs = [(FILE_STEM, table)]
    if aggregated:
        outputs.append((AGGREGATED_STEM, aggregate_sample(table)))
    if with_journey:
        events = journey(table, seed, start=start, months=months)
        outputs.append((JOURNEY_STEM, events))
        outputs.append((COMPLAINTS_STEM, complaints(table, events, seed, start=start, months=months)))
    paths = []
    for stem, data in outputs:
        for fmt in formats:
            path = out / f"{stem}.{fmt}"
            _write_table(data, path, fmt)
            paths.append(path)
    return paths
