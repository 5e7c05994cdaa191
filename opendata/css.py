"""Customer Service Standards (CSS, Work Programme report recs 4–13): one framework per prime.

A framework is YAML checked against ``css.schema.json``: for each of the five stages of the
customer journey (rec 6) a quantitative Standard Measure and a plain-English Service Standard
(rec 7). ``check_framework`` then says what a reader of the report would: where the text is hard
for a customer (rec 5), whether the framework is overdue its twice-yearly review (rec 8), and
whether an override names a payment group that does not exist.

Readability rules, each a warning naming the stage and quoting the sentence (simple on purpose,
so a writer can see why and fix it):

- more than 25 words in a sentence: GOV.UK's content design limit;
- a sentence of 5 to 25 words above Flesch-Kincaid grade 9 (a reading age of about 14): its words
  are too long. The formula on one sentence is rough, so the bar is high; under 5 words one long
  word swings it, and over 25 the length alone passes it (that sentence is flagged as long);
- jargon from a short list of programme words a customer does not use (``JARGON``), each with
  the plainer thing to say;
- a whole standard under 60 on the Flesch Reading Ease scale (60–70 is "plain English").

Sentences end at ``.``, ``!`` or ``?`` before a space and a word that is not lower case, so
"e.g. this" stays one sentence (and "e.g." is itself on the jargon list).
"""

from __future__ import annotations

import json
import re
from calendar import monthrange
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from opendata.errors import SpecError
from opendata.spec import check_against_schema, read_codelist
from opendata.workdays import NATIONS

SCHEMA_FILE = "css.schema.json"
MAX_BYTES = 1024 * 1024  # a framework is a few kilobytes; anything near this is not one
DEFAULT_PAYMENT_GROUPS = "../codelists/payment-groups.csv"
STAGES = {
    "pre-programme-engagement": "Pre-programme engagement",
    "programme-engagement": "Programme engagement",
    "pre-work-support": "Pre-work support",
    "in-work-support": "In-work support",
    "programme-exit": "Programme exit",
}
EVENTS = (
    "referral",
    "first_contact",
    "attachment",
    "action_plan",
    "review",
    "job_start",
    "in_work_support_offered",
    "in_work_support_taken_up",
    "exit_report_requested",
    "exit_report_sent",
    "programme_exit",
)
REPEATING = ("review",)  # the only event a participant has many of: what ``kind: every`` measures
REVIEW_MONTHS = 6  # rec 8: reviewed twice a year
MAX_WORDS = 25
MAX_GRADE, GRADE_MIN_WORDS = 9.0, 5
MIN_READING_EASE = 60.0
ERROR, WARNING = "error", "warning"
JARGON = (  # (pattern, what to say instead); whole words, any case
    (r"attach(?:ed|ment|ments)", "say when they start on the programme"),
    (r"conditionality", "say what they must do to keep getting their benefit"),
    (r"sanction(?:s|ed)?", "say their benefit could be cut or stopped, and why"),
    (r"PG ?\d+|payment groups?", "say who it is for, for example 'if you have just left prison'"),
    (r"claimants?|participants?", "say 'you'"),
    (r"JCP", "say 'Jobcentre Plus'"),
    (r"prime providers?|primes?|subcontractors?|supply chains?", "say 'we' or name the organisation"),
    (r"signpost(?:s|ed|ing)?", "say 'tell you about' or 'put you in touch with'"),
    (r"facilitat(?:e|es|ed|ing)", "say 'help'"),
    (r"stakeholders?", "say who you mean"),
    (r"sustainment", "say 'staying in work'"),
    (r"mandat(?:e|ed|ory|ion)", "say what they must do"),
    (r"in accordance with", "say 'under' or 'as'"),
    (r"e\.g\.?|i\.e\.?|etc\.?", "say 'for example', 'that is', or list them all"),
)
_JARGON = tuple((re.compile(rf"(?<![\w.])(?:{p})(?![\w])", re.IGNORECASE), advice) for p, advice in JARGON)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?![a-z])")


class FrameworkError(SpecError):
    """The framework file cannot be used at all; a SpecError so the CLI reports it like a bad spec."""


@dataclass(frozen=True)
class StandardMeasure:
    """``to_event`` within ``limit`` of ``from_event`` (kind ``within``), or no gap longer than
    ``limit`` before each ``to_event`` (kind ``every``: reviews); per payment group where overridden."""

    name: str
    from_event: str
    to_event: str
    limit: int
    unit: str
    contractual: bool
    kind: str = "within"
    overrides: dict[str, int] = field(default_factory=dict)

    def limit_for(self, payment_group: str) -> int:
        return self.overrides.get(payment_group, self.limit)

    def describe(self) -> str:
        unit, start, end = (w.replace("_", " ") for w in (self.unit, self.from_event, self.to_event))
        if self.kind == "every":
            text = f"{end} at least every {self.limit} {unit} from {start}"
        else:
            text = f"{end} within {self.limit} {unit} of {start}"
        extra = "".join(f", {code}: {n}" for code, n in self.overrides.items())
        return text + extra + (" (contractual)" if self.contractual else "")


@dataclass(frozen=True)
class Stage:
    id: str
    standard_measure: StandardMeasure
    service_standard: str

    @property
    def title(self) -> str:
        return STAGES[self.id]


@dataclass(frozen=True)
class Framework:
    path: Path
    prime: str
    title: str
    nation: str
    reviewed: date
    payment_groups: Path
    stages: tuple[Stage, ...]

    def stage(self, stage_id: str) -> Stage:
        for s in self.stages:
            if s.id == stage_id:
                return s
        raise KeyError(stage_id)


@dataclass(frozen=True)
class Finding:
    severity: str  # error or warning
    stage: str  # a stage id, or "" for the framework as a whole
    rule: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Readability:
    """One Service Standard's scores (textstat): Flesch Reading Ease (higher is easier) and grade."""

    stage: str
    words: int
    sentences: int
    flesch_reading_ease: float
    grade: float  # Flesch-Kincaid grade level

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Report:
    framework: Framework
    readability: tuple[Readability, ...]
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not any(f.severity == ERROR for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        fw = self.framework
        measures = {s.id: s.standard_measure.describe() for s in fw.stages}
        return {
            "file": str(fw.path),
            "prime": fw.prime,
            "title": fw.title,
            "nation": fw.nation,
            "reviewed": fw.reviewed.isoformat(),
            "ok": self.ok,
            "stages": [{**r.to_dict(), "standard_measure": measures[r.stage]} for r in self.readability],
            "findings": [f.to_dict() for f in self.findings],
        }


# --- loading -------------------------------------------------------------------------------------


@cache
def json_schema() -> dict[str, Any]:
    return json.loads(resources.files("opendata").joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))


class _Loader(yaml.SafeLoader):
    """Safe YAML with dates left as text, and neither aliases (a "billion laughs" file) nor repeated keys."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a framework", mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key.value!r} is repeated", key.start_mark)
            seen.add(key.value if isinstance(key, yaml.ScalarNode) else id(key))
        return super().construct_mapping(node, deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _read(path: Path) -> Any:
    label = f"framework {path}"
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)  # never more, whatever the file claims to be
    except FileNotFoundError:
        raise FrameworkError(f"{label} does not exist") from None
    except OSError as exc:
        raise FrameworkError(f"{label} cannot be read: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise FrameworkError(f"{label} is larger than {MAX_BYTES // 1024 // 1024} MiB; a framework is a few kilobytes")
    try:
        return yaml.load(data.decode("utf-8-sig"), Loader=_Loader)  # a SafeLoader
    except UnicodeDecodeError as exc:
        raise FrameworkError(f"{label} is not UTF-8 text: {exc}") from None
    except yaml.YAMLError as exc:
        raise FrameworkError(f"{label} is not valid YAML: {exc}") from None
    except RecursionError:
        raise FrameworkError(f"{label} is nested too deeply to be a framework") from None


def load_framework(path: str | Path) -> Framework:
    """Load, schema-check and cross-check a framework; raise FrameworkError naming the key."""
    path = Path(path)
    raw = _read(path)
    label = f"framework {path}"
    if not isinstance(raw, dict):
        raise FrameworkError(
            f"{label} must be a mapping with keys {', '.join(json_schema()['required'])}, got {type(raw).__name__}"
        )
    check_against_schema(raw, json_schema(), label, FrameworkError)
    try:
        return _build(raw, path)
    except FrameworkError as exc:
        raise FrameworkError(f"{label} is invalid:\n  {exc}") from None


def _build(raw: dict[str, Any], path: Path) -> Framework:
    if raw["nation"] not in NATIONS:  # the schema's enum, kept in step with opendata.workdays by the tests
        raise FrameworkError(f"nation: {raw['nation']!r} is not one of {', '.join(NATIONS)}")
    try:
        reviewed = date.fromisoformat(raw["reviewed"])
    except ValueError:
        raise FrameworkError(f"reviewed: {raw['reviewed']!r} is not a real date (YYYY-MM-DD)") from None
    stages = []
    for stage_id in STAGES:  # journey order, whatever the file's order
        s = raw["stages"][stage_id]
        m, where = s["standard_measure"], f"stages.{stage_id}.standard_measure"
        measure = StandardMeasure(
            name=m["name"],
            from_event=m["from_event"],
            to_event=m["to_event"],
            limit=int(m["limit"]),
            unit=m["unit"],
            contractual=m["contractual"],
            kind=m.get("kind", "within"),
            overrides={code: int(n) for code, n in (m.get("overrides") or {}).items()},
        )
        if measure.kind == "every" and measure.to_event not in REPEATING:
            raise FrameworkError(
                f"{where}.to_event: kind 'every' limits the gap between successive events, and only "
                f"{', '.join(REPEATING)} repeats; got {measure.to_event!r}"
            )
        if measure.kind == "within" and measure.from_event == measure.to_event:
            raise FrameworkError(
                f"{where}: from_event and to_event are both {measure.from_event!r}; "
                "a measure runs from one event to another"
            )
        stages.append(Stage(stage_id, measure, " ".join(s["service_standard"].split())))
    return Framework(
        path=path,
        prime=raw["prime"],
        title=raw["title"],
        nation=raw["nation"],
        reviewed=reviewed,
        payment_groups=path.parent / raw.get("payment_groups", DEFAULT_PAYMENT_GROUPS),
        stages=tuple(stages),
    )


# --- checking ------------------------------------------------------------------------------------


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(" ".join(text.split())) if s]


def readability(stage: Stage) -> Readability:
    import textstat  # loads a pronouncing dictionary: only when text is scored

    text = stage.service_standard
    return Readability(
        stage=stage.id,
        words=textstat.lexicon_count(text),
        sentences=len(sentences(text)),
        flesch_reading_ease=round(textstat.flesch_reading_ease(text), 1),
        grade=round(textstat.flesch_kincaid_grade(text), 1),
    )


def _text_findings(stage: Stage) -> list[Finding]:
    import textstat

    found: list[Finding] = []

    def warn(rule: str, message: str) -> None:
        found.append(Finding(WARNING, stage.id, rule, message))

    ease = readability(stage).flesch_reading_ease
    if ease < MIN_READING_EASE:
        warn(
            "hard-to-read", f"Flesch Reading Ease {ease} is under {MIN_READING_EASE:g}: use shorter sentences and words"
        )
    for sentence in sentences(stage.service_standard):
        words, grade = textstat.lexicon_count(sentence), textstat.flesch_kincaid_grade(sentence)
        if words > MAX_WORDS:
            warn("long-sentence", f"{words} words, more than {MAX_WORDS}: split it: “{sentence}”")
        elif words >= GRADE_MIN_WORDS and grade > MAX_GRADE:  # a long one is flagged for its length alone
            warn("hard-sentence", f"grade {grade:.1f}, above {MAX_GRADE:g}: use shorter, everyday words: “{sentence}”")
        for pattern, advice in _JARGON:
            for word in dict.fromkeys(m.group(0) for m in pattern.finditer(sentence)):
                warn("jargon", f"“{word}” is programme jargon ({advice}): “{sentence}”")
    return found


def _months_after(day: date, months: int) -> date:
    years, month = divmod(day.month - 1 + months, 12)
    year = day.year + years
    return date(year, month + 1, min(day.day, monthrange(year, month + 1)[1]))


def check_framework(framework: Framework, today: date) -> list[Finding]:
    """What stops the framework being used (errors) or read (warnings), framework-wide first,
    then stage by stage along the journey."""
    found = []
    due = _months_after(framework.reviewed, REVIEW_MONTHS)
    if framework.reviewed > today:
        found.append(Finding(ERROR, "", "review-date", f"reviewed {framework.reviewed} is after today ({today})"))
    elif today > due:
        message = f"reviewed {framework.reviewed}, more than six months before {today}: due by {due} (rec 8)"
        found.append(Finding(WARNING, "", "review-overdue", message))
    codes: tuple[str, ...] = ()
    for stage in framework.stages:
        overrides = stage.standard_measure.overrides
        if overrides and not codes:
            codes = read_codelist(framework.payment_groups).codes
        for code in (c for c in overrides if c not in codes):
            message = f"overrides: {code!r} is not a payment group in {framework.payment_groups} ({', '.join(codes)})"
            found.append(Finding(ERROR, stage.id, "unknown-payment-group", message))
        found.extend(_text_findings(stage))
    return found


def london_today() -> date:
    return datetime.now(ZoneInfo("Europe/London")).date()


def check_files(paths: list[Path], today: date | None = None) -> list[Report]:
    """Load every framework first (a malformed one stops the check), then check and score each."""
    today = today or london_today()
    frameworks = [load_framework(p) for p in paths]
    return [
        Report(fw, tuple(readability(s) for s in fw.stages), tuple(check_framework(fw, today))) for fw in frameworks
    ]
