"""When may a record be destroyed? Pure date arithmetic over the presets in force; no I/O.

The rules, each chosen so that a doubt keeps the record:

- A record is kept until the LATEST date given by any preset that applies to it
  (a record is kept if any rule keeps it). The preset giving that date controls.
- A preset that counts from a fact the archive does not have (no termination
  date, no date of birth for a rule with a minors' clause) gives no date, and
  then the record is not due at all: missing facts never let a record go.
- Minors: the later of the adult period and N years after the birthday at the
  age of majority. The clause is applied to every client whose date of birth is
  known; for an adult it can never be the later date, so it changes nothing.
- Death: where a preset has one, at least N years after a recorded death.
- The period never counts from a date earlier than the record's own session
  date (a record written after the recorded "last service" shows the facts are
  stale; counting from the record is the later, safe choice).
- 29 February plus N years, in a year without one, is 1 March (the later of the
  two candidate days). Age-of-majority rules step twice: first to the birthday
  at that age, then N years on from it, each step rounding forward this way.
- A record is due only on the day AFTER its destroy-after date (`is_due`).
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from scanarchive.retention.presets import RECORD_CLASSES, Preset, RecordClass, Stage, TriggerFact

FACT_WORDS: dict[TriggerFact, str] = {
    "last_service": "the last service",
    "last_entry": "the last entry",
    "termination": "termination of therapy",
}
_KEEP_WORDS = {"full": "the full record", "full_or_summary": "the full record or a summary", "summary": "a summary"}
_CLASS_WORDS = {"progress": "progress notes", "psychotherapy": "psychotherapy (process) notes"}


@dataclass(frozen=True)
class ClientFacts:
    """The retention facts of one client; None means "not recorded"."""

    date_of_birth: date | None = None
    termination: date | None = None  # therapy terminated / patient discharged / treatment ceased
    date_of_death: date | None = None
    last_entry: date | None = None
    last_service: date | None = None


@dataclass(frozen=True)
class RuleOutcome:
    """What one preset says about one record. keep_until None: no date, so the record is not due."""

    preset: Preset
    keep_until: date | None
    why: str
    stages: tuple[tuple[Stage, date], ...] = ()  # each stage with the day it ends

    @property
    def preset_id(self) -> str:
        return self.preset.id


@dataclass(frozen=True)
class Decision:
    destroy_after: date | None  # None: not due (keep); otherwise the record may go from the next day on
    controlling: Preset | None  # the preset giving the latest date, or the one that blocks
    per_preset: tuple[RuleOutcome, ...]  # the presets that apply to this record, in the order given
    not_applicable: tuple[tuple[Preset, str], ...]  # presets in force that do not reach this record, and why
    decided_on: date
    reason: str = ""  # why there is no controlling preset at all

    def explain(self) -> str:
        """Plain words for the clinician: the date, the rule that sets it, every rule's answer, warnings."""
        n = len(self.per_preset)
        outcome = next((o for o in self.per_preset if o.preset is self.controlling), None)
        if outcome is None:
            lines = [f"Kept: not due for destruction. {self.reason}"]
        elif self.destroy_after is None:
            lines = [f"Kept: not due for destruction under {outcome.preset.label}: {outcome.why}."]
        else:
            among = "the only rule that applies" if n == 1 else f"the latest of {n} rules that apply"
            lines = [f"Kept until {self.destroy_after} under {outcome.preset.label}: {outcome.why}; {among}."]
        lines += [f"  - {o.preset_id}: {o.keep_until or 'no date'}: {o.why}." for o in self.per_preset]
        lines += [f"  - {p.id}: does not apply: {why}." for p, why in self.not_applicable]
        for p in (o.preset for o in self.per_preset if not o.preset.confirmed):
            lines.append(f"Warning: {p.label} is unconfirmed; check it against the official text ({p.notes})")
        if self.destroy_after is not None:
            lines.append(
                f"Due for review since {self.destroy_after + timedelta(days=1)}."
                if is_due(self, self.decided_on)
                else f"Not due on {self.decided_on}."
            )
        return "\n".join(lines)


def is_due(decision: Decision, today: date) -> bool:
    """True once the destroy-after date has fully passed; never when there is no date."""
    return decision.destroy_after is not None and today > decision.destroy_after


def add_years(day: date, years: int) -> date:
    """The same day `years` later; 29 February becomes 1 March in a year without one (the later choice)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a common year
        return date(day.year + years, 3, 1)


def decide(
    facts: ClientFacts,
    session_date: date | None,
    record_class: RecordClass,
    presets: Sequence[Preset],
    today: date,
) -> Decision:
    """The destroy-after date of one record under every preset in force (see the module docstring)."""
    if record_class not in RECORD_CLASSES:
        raise ValueError(f"unknown record class {record_class!r}")
    if session_date is None:
        return Decision(
            None, None, (), (), today, "The record is unfiled (no session date); unfiled records are never due."
        )
    if not presets:
        return Decision(None, None, (), (), today, "No retention rule is in force; choose one in the archive's config.")
    outcomes: list[RuleOutcome] = []
    skipped: list[tuple[Preset, str]] = []
    for preset in presets:
        result = _apply(preset, facts, session_date, record_class)
        if isinstance(result, str):
            skipped.append((preset, result))
        else:
            outcomes.append(result)
    if not outcomes:
        reason = "None of the rules in force applies to this record, so no rule allows destroying it."
        return Decision(None, None, (), tuple(skipped), today, reason)
    blocking = [o for o in outcomes if o.keep_until is None]
    if blocking:
        return Decision(None, blocking[0].preset, tuple(outcomes), tuple(skipped), today)
    latest = max(o.keep_until for o in outcomes if o.keep_until is not None)
    tied = [o.preset for o in outcomes if o.keep_until == latest]
    controlling = next((p for p in tied if p.confirmed), tied[0])  # on a tie, cite a confirmed rule
    return Decision(latest, controlling, tuple(outcomes), tuple(skipped), today)


def _apply(preset: Preset, facts: ClientFacts, session_date: date, record_class: RecordClass) -> RuleOutcome | str:
    """The preset's outcome for this record, or (a str) why the preset does not reach it."""
    if record_class not in preset.record_classes:
        return f"it does not cover {_CLASS_WORDS[record_class]}"
    if preset.effective_from and session_date < preset.effective_from:
        return f"it covers records made from {preset.effective_from} on; this one is from {session_date}"
    if preset.effective_until and session_date > preset.effective_until:
        return f"it covers records made until {preset.effective_until}; this one is from {session_date}"
    trigger = _trigger_words(preset.trigger)
    missing = [fact for fact in preset.trigger if getattr(facts, fact) is None]
    if missing:
        unknown = "which is" if len(preset.trigger) == 1 else f"and {FACT_WORDS[missing[0]]} is"
        return RuleOutcome(preset, None, f"it counts from {trigger}, {unknown} not recorded for this client")
    recorded = max(getattr(facts, fact) for fact in preset.trigger)
    start = max(recorded, session_date)
    if preset.applies_if_trigger_on_or_after and start < preset.applies_if_trigger_on_or_after:
        return f"it applies only when {trigger} is on or after {preset.applies_if_trigger_on_or_after} (here {start})"

    terms = [(add_years(start, preset.adult_years), f"{_years(preset.adult_years)} after {trigger} on {start}")]
    steps = [(start, preset.adult_years)]
    if preset.age_of_majority is not None and preset.minor_years_after_majority is not None:
        if facts.date_of_birth is None:
            why = "the client's date of birth is not recorded, and this rule keeps a minor's records longer"
            return RuleOutcome(preset, None, why)
        age, extra = preset.age_of_majority, preset.minor_years_after_majority
        majority = add_years(facts.date_of_birth, age)
        terms.append(
            (add_years(majority, extra), f"{_years(extra)} after the client's {_ordinal(age)} birthday on {majority}")
        )
        steps += [(facts.date_of_birth, age), (majority, extra)]
    if preset.after_death_years is not None and facts.date_of_death is not None:
        years = preset.after_death_years
        terms.append(
            (
                add_years(facts.date_of_death, years),
                f"{_years(years)} after the client's death on {facts.date_of_death}",
            )
        )
        steps.append((facts.date_of_death, years))
    keep_until = max(day for day, _ in terms)

    why = terms[0][1] if len(terms) == 1 else _latest_of(terms)
    stages = _stage_ends(preset.stages, start, keep_until)
    if stages:
        why += " (" + ", then ".join(f"{_KEEP_WORDS[s.keep]} until {end}" for s, end in stages) + ")"
    if start > recorded:
        why += f"; counted from this record's session date, which is later than the recorded {recorded}"
    if any(d.month == 2 and d.day == 29 and not calendar.isleap(d.year + n) for d, n in steps):
        why += "; 29 February counts as 1 March in years without one"
    return RuleOutcome(preset, keep_until, why, stages)


def _stage_ends(stages: tuple[Stage, ...], start: date, keep_until: date) -> tuple[tuple[Stage, date], ...]:
    """Each stage with its end day; the last stage runs to the final date (which a minor or death rule may extend)."""
    ends, years = [], 0
    for stage in stages:
        years += stage.years
        ends.append((stage, add_years(start, years)))
    if ends:
        ends[-1] = (ends[-1][0], keep_until)
    return tuple(ends)


def _trigger_words(trigger: tuple[TriggerFact, ...]) -> str:
    words = [FACT_WORDS[fact] for fact in trigger]
    if len(words) == 1:
        return words[0]
    return f"the {'later' if len(words) == 2 else 'latest'} of {', '.join(words[:-1])} and {words[-1]}"


def _latest_of(terms: list[tuple[date, str]]) -> str:
    parts = [f"{text} ({day})" for day, text in terms]
    return f"the {'later' if len(parts) == 2 else 'latest'} of {', '.join(parts[:-1])} and {parts[-1]}"


def _years(n: int) -> str:
    return "1 year" if n == 1 else f"{n} years"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


__all__ = ["FACT_WORDS", "ClientFacts", "Decision", "RuleOutcome", "add_years", "decide", "is_due"]
