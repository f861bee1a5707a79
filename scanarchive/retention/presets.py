"""Retention presets: one TOML file per legal rule, loaded into typed, validated dataclasses.

Rules are data, not code. Each file in scanarchive/data/retention/ holds one rule with its
mandate text, citation and status ("confirmed" when the rule's text was seen in
a source, "unconfirmed" otherwise). Unconfirmed presets load like the others;
`Preset.confirmed` is False so the caller can warn. The arithmetic that applies
a preset to a record is in policy.py.

File keys (unknown keys are refused, so a misspelt key can never be ignored):

    id, name, jurisdiction, profession, status, mandate, citation   text, required
    source_url, trigger_wording, notes                             text, optional
    trigger             a fact name or a list of them; the period counts from the LATEST:
                        "last_service", "last_entry", "termination" (termination of therapy / discharge)
    adult_years         whole years after the trigger
    age_of_majority, minor_years_after_majority
                        together or not at all: keep at least N years after the client's
                        birthday at that age (applied whenever it is later than the adult period)
    after_death_years   keep at least N years after the client's death, when the death is recorded
    effective_from, effective_until
                        dates (inclusive): the rule covers records whose session date is in this window
    applies_if_trigger_on_or_after
                        date: the rule covers a client only if the trigger is on or after it
    record_classes      ["progress", "psychotherapy"] (default: both)
    [[stages]]          name, years, keep ("full" | "full_or_summary" | "summary"); the stage
                        years must add up to adult_years
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final, Literal, NoReturn, cast

from scanarchive import packagedata
from scanarchive.errors import ConfigError

DEFAULT_FOLDER: Final = packagedata.RETENTION

Status = Literal["confirmed", "unconfirmed"]
TriggerFact = Literal["last_service", "last_entry", "termination"]
RecordClass = Literal["progress", "psychotherapy"]
StageKeep = Literal["full", "full_or_summary", "summary"]

STATUSES: Final[tuple[Status, ...]] = ("confirmed", "unconfirmed")
TRIGGER_FACTS: Final[tuple[TriggerFact, ...]] = ("last_service", "last_entry", "termination")
RECORD_CLASSES: Final[tuple[RecordClass, ...]] = ("progress", "psychotherapy")
STAGE_KEEPS: Final[tuple[StageKeep, ...]] = ("full", "full_or_summary", "summary")

_HINT = "Fix or remove that preset file; retention rules are read from scanarchive/data/retention/*.toml, one rule per file."
_ID = re.compile(r"[a-z][a-z0-9_]*")
_KEYS: Final = frozenset(
    {
        "id", "name", "jurisdiction", "profession", "status", "mandate", "citation", "source_url",
        "trigger", "trigger_wording", "adult_years", "age_of_majority", "minor_years_after_majority",
        "after_death_years", "effective_from", "effective_until", "applies_if_trigger_on_or_after",
        "record_classes", "stages", "notes",
    }
)  # fmt: skip
_STAGE_KEYS: Final = frozenset({"name", "years", "keep"})


@dataclass(frozen=True)
class Stage:
    """One step of a multi-stage disposition: keep `keep` for `years` after the previous stage ends."""

    name: str
    years: int
    keep: StageKeep


@dataclass(frozen=True)
class Preset:
    id: str
    name: str
    jurisdiction: str
    profession: str
    status: Status
    mandate: str
    citation: str
    trigger: tuple[TriggerFact, ...]
    adult_years: int
    source_url: str | None = None
    trigger_wording: str = ""
    age_of_majority: int | None = None
    minor_years_after_majority: int | None = None
    after_death_years: int | None = None
    effective_from: date | None = None
    effective_until: date | None = None
    applies_if_trigger_on_or_after: date | None = None
    record_classes: tuple[RecordClass, ...] = RECORD_CLASSES
    stages: tuple[Stage, ...] = ()
    notes: str = ""

    @property
    def confirmed(self) -> bool:
        return self.status == "confirmed"

    @property
    def label(self) -> str:
        """How explanations name the rule: 'Texas LPC' (22 TAC §681.36(b))."""
        return f"'{self.name}' ({self.citation})"


def load_presets(folder: Path | None = None) -> dict[str, Preset]:
    """Every *.toml preset in `folder` (default: the presets shipped in scanarchive/data/retention/), by id."""
    folder = DEFAULT_FOLDER if folder is None else Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"The retention preset folder {folder} does not exist.", hint=_HINT)
    files = sorted(folder.glob("*.toml"))
    if not files:
        raise ConfigError(f"The retention preset folder {folder} holds no preset files (*.toml).", hint=_HINT)
    return {preset.id: preset for preset in map(load_preset, files)}


def load_preset(path: Path) -> Preset:
    """One preset file; its id must equal the file name (us_tx_lpc.toml holds id = "us_tx_lpc")."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read the retention preset {path} ({exc}).", hint=_HINT) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"The retention preset {path} is not valid TOML ({exc}).", hint=_HINT) from exc
    return parse_preset(doc, where=str(path), expected_id=path.stem)


def select_presets(available: dict[str, Preset], ids: list[str]) -> list[Preset]:
    """The presets a practice has put in force, in its order; an unknown id is an error, never skipped."""
    unknown = [i for i in ids if i not in available]
    if unknown:
        near = [m for i in unknown for m in difflib.get_close_matches(i, list(available), n=1, cutoff=0.6)]
        raise ConfigError(
            f"Unknown retention preset(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(available))}.",
            hint=(f"Did you mean {', '.join(near)}? " if near else "")
            + "Copy the id from 'scanarchive retention presets', then: scanarchive retention use ID…",
        )
    return [available[i] for i in ids]


def parse_preset(doc: dict[str, Any], *, where: str, expected_id: str | None = None) -> Preset:
    """Validate one parsed preset; every error names `where` (the file) and the key."""
    r = _Reader(where, doc)
    r.refuse_unknown(_KEYS)
    preset_id = r.text("id")
    if not _ID.fullmatch(preset_id):
        r.fail("id", "must be lower-case letters, digits and _ (like us_tx_lpc)", preset_id)
    if expected_id is not None and preset_id != expected_id:
        r.fail("id", f"must match the file name ({expected_id!r})", preset_id)
    status = r.choice("status", STATUSES)
    notes = r.text("notes", required=False)
    if status == "unconfirmed" and not notes:
        r.fail("notes", "must say what is unconfirmed when status is 'unconfirmed'", None)
    source_url = r.text("source_url", required=False) or None
    if source_url is not None and not source_url.startswith(("https://", "http://")):
        r.fail("source_url", "must be a web address starting with https:// or http://", source_url)

    age_of_majority = r.optional_years("age_of_majority", low=14, high=25)
    minor_years = r.optional_years("minor_years_after_majority", low=0, high=50)
    if (age_of_majority is None) != (minor_years is None):
        r.fail("age_of_majority", "and minor_years_after_majority must be given together (or neither)", None)

    effective_from, effective_until = r.day("effective_from"), r.day("effective_until")
    if effective_from and effective_until and effective_until < effective_from:
        r.fail("effective_until", f"must not be before effective_from ({effective_from})", effective_until)

    adult_years = r.years("adult_years", low=1, high=150)
    stages = tuple(_stage(where, i, raw) for i, raw in enumerate(r.table_list("stages")))
    if stages and sum(s.years for s in stages) != adult_years:
        r.fail("stages", f"years must add up to adult_years ({adult_years})", [s.years for s in stages])

    trigger_raw = r.get("trigger")
    triggers = [trigger_raw] if isinstance(trigger_raw, str) else trigger_raw
    if not isinstance(triggers, list) or not triggers or any(t not in TRIGGER_FACTS for t in triggers):
        r.fail("trigger", f"must be one of {', '.join(TRIGGER_FACTS)} (or a list of them)", trigger_raw)
    return Preset(
        id=preset_id,
        name=r.text("name"),
        jurisdiction=r.text("jurisdiction"),
        profession=r.text("profession"),
        status=status,
        mandate=r.text("mandate"),
        citation=r.text("citation"),
        source_url=source_url,
        trigger=tuple(dict.fromkeys(cast(list[TriggerFact], triggers))),
        trigger_wording=r.text("trigger_wording", required=False),
        adult_years=adult_years,
        age_of_majority=age_of_majority,
        minor_years_after_majority=minor_years,
        after_death_years=r.optional_years("after_death_years", low=0, high=150),
        effective_from=effective_from,
        effective_until=effective_until,
        applies_if_trigger_on_or_after=r.day("applies_if_trigger_on_or_after"),
        record_classes=r.choices("record_classes", RECORD_CLASSES),
        stages=stages,
        notes=notes,
    )


def _stage(where: str, index: int, raw: dict[str, Any]) -> Stage:
    r = _Reader(f"{where}: stages[{index}]", raw)
    r.refuse_unknown(_STAGE_KEYS)
    return Stage(name=r.text("name"), years=r.years("years", low=1, high=150), keep=r.choice("keep", STAGE_KEEPS))


class _Reader:
    """Typed access to one TOML table; every failure names the file and the key in plain words."""

    def __init__(self, where: str, table: dict[str, Any]) -> None:
        self.where = where
        self.table = table

    def fail(self, key: str, problem: str, value: object) -> NoReturn:
        shown = "" if value is None else f" (it is {value!r})"
        raise ConfigError(f"Retention preset {self.where}: '{key}' {problem}{shown}.", hint=_HINT)

    def refuse_unknown(self, known: frozenset[str]) -> None:
        unknown = sorted(set(self.table) - known)
        if unknown:
            raise ConfigError(
                f"Retention preset {self.where} has unknown key(s) {', '.join(map(repr, unknown))}; "
                f"allowed keys are {', '.join(sorted(known))}.",
                hint=_HINT,
            )

    def get(self, key: str) -> Any:
        if key not in self.table:
            self.fail(key, "is missing", None)
        return self.table[key]

    def text(self, key: str, *, required: bool = True) -> str:
        if not required and key not in self.table:
            return ""
        value = self.get(key)
        if not isinstance(value, str) or not value.strip():
            self.fail(key, "must be text in quotes and not empty", value)
        return str(value).strip()

    def years(self, key: str, *, low: int, high: int) -> int:
        value = self.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            self.fail(key, f"must be a whole number of years from {low} to {high}", value)
        return value

    def optional_years(self, key: str, *, low: int, high: int) -> int | None:
        return self.years(key, low=low, high=high) if key in self.table else None

    def choice(self, key: str, allowed: tuple[str, ...]) -> Any:
        value = self.get(key)
        if value not in allowed:
            self.fail(key, f"must be one of {', '.join(map(repr, allowed))}", value)
        return value

    def choices(self, key: str, allowed: tuple[str, ...]) -> Any:
        value = self.table.get(key, list(allowed))
        if not isinstance(value, list) or not value or any(v not in allowed for v in value):
            self.fail(key, f"must be a list drawn from {', '.join(map(repr, allowed))}", value)
        return tuple(dict.fromkeys(value))

    def day(self, key: str) -> date | None:
        value = self.table.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                self.fail(key, "must be a date like 2015-01-01", value)
        if not isinstance(value, date) or isinstance(value, datetime):
            self.fail(key, "must be a date like 2015-01-01", value)
        return value

    def table_list(self, key: str) -> list[dict[str, Any]]:
        value = self.table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.fail(key, "must be a list of [[stages]] tables", value)
        return cast(list[dict[str, Any]], value)
