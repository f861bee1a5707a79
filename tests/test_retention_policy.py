"""Retention presets (scanarchive/data/retention/*.toml) and the destroy-after arithmetic.

Every expected date is worked out by hand in a comment next to it, from the
rule in the preset file (see shared/reference/recordkeeping.md for the sources).
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from scanarchive.errors import ConfigError
from scanarchive.retention import (
    DEFAULT_FOLDER,
    ClientFacts,
    Preset,
    add_years,
    decide,
    is_due,
    load_presets,
    select_presets,
)

TODAY = date(2026, 11, 27)
SHIPPED = {
    "apa_2007": "confirmed",
    "ca_on_psychologist": "confirmed",
    "uk_nhs_mental_health": "confirmed",
    "us_az_health": "confirmed",
    "us_ca_bbs": "confirmed",
    "us_ca_psychologist": "confirmed",
    "us_fl_491": "confirmed",
    "us_fl_psychologist": "confirmed",
    "us_me_sw_private": "confirmed",
    "us_nj_cmhp": "confirmed",
    "us_nj_mft": "confirmed",
    "us_nj_psychologist": "unconfirmed",
    "us_ny_regents": "unconfirmed",
    "us_pa_counselor": "confirmed",
    "us_pa_psychologist": "confirmed",
    "us_tx_lcsw": "confirmed",
    "us_tx_lpc": "confirmed",
}


@pytest.fixture(scope="module")
def presets() -> dict[str, Preset]:
    return load_presets()


def _pick(presets: dict[str, Preset], *ids: str) -> list[Preset]:
    return select_presets(presets, list(ids))


# --- the shipped files -------------------------------------------------------------------------


def test_every_shipped_preset_has_citation_mandate_and_status(presets: dict[str, Preset]) -> None:
    assert {pid: p.status for pid, p in presets.items()} == SHIPPED
    for p in presets.values():
        assert p.citation and p.mandate and p.name and p.trigger, p.id
        assert p.source_url is None or p.source_url.startswith(("https://", "http://")), p.id
        assert p.confirmed == (p.status == "confirmed"), p.id
        if not p.confirmed:
            assert "unconfirmed" in p.notes, p.id  # the file says what is unconfirmed


def test_unconfirmed_presets_are_loaded_but_flagged(presets: dict[str, Preset]) -> None:
    ny = presets["us_ny_regents"]
    assert ny.status == "unconfirmed" and not ny.confirmed
    facts = ClientFacts(date_of_birth=date(1980, 1, 1), last_service=date(2020, 1, 1), last_entry=date(2020, 1, 1))
    flagged = decide(facts, date(2020, 1, 1), "progress", [ny], TODAY)
    # 6 years after 2020-01-01 = 2026-01-01; the rule still computes, and the explanation warns.
    assert flagged.destroy_after == date(2026, 1, 1)
    assert "Warning: 'New York licensed professions (Board of Regents)'" in flagged.explain()
    assert "is unconfirmed" in flagged.explain()
    clean = decide(facts, date(2020, 1, 1), "progress", _pick(presets, "us_az_health"), TODAY)
    assert "Warning" not in clean.explain()


# --- adults, minors, leap days, death ----------------------------------------------------------


def test_adult_under_texas_lpc(presets: dict[str, Preset]) -> None:
    facts = ClientFacts(date_of_birth=date(1980, 5, 5), termination=date(2027, 3, 1), last_service=date(2027, 2, 20))
    decision = decide(facts, date(2027, 2, 20), "progress", _pick(presets, "us_tx_lpc"), TODAY)
    # termination 2027-03-01 + 7 y = 2034-03-01; minors' clause 1998-05-05 (18th birthday) + 5 y = 2003-05-05.
    assert decision.destroy_after == date(2034, 3, 1)
    assert decision.controlling is presets["us_tx_lpc"]
    assert decision.explain().startswith(
        "Kept until 2034-03-01 under 'Texas LPC' (22 TAC §681.36(b)): the later of 7 years after termination "
        "of therapy on 2027-03-01 (2034-03-01) and 5 years after the client's 18th birthday on 1998-05-05 "
        "(2003-05-05); the only rule that applies."
    )
    assert not is_due(decision, date(2034, 3, 1))  # kept through the date itself
    assert is_due(decision, date(2034, 3, 2))


@pytest.mark.parametrize(
    ("born", "terminated", "expected"),
    [
        # Child: 7 y after 2020-01-10 = 2027-01-10; 18th birthday 2030-06-15 + 5 y = 2035-06-15 -> minors' branch.
        (date(2012, 6, 15), date(2020, 1, 10), date(2035, 6, 15)),
        # Teen of 16: 7 y after 2021-01-10 = 2028-01-10; 18th birthday 2022-06-15 + 5 y = 2027-06-15 -> adult branch.
        (date(2004, 6, 15), date(2021, 1, 10), date(2028, 1, 10)),
    ],
)
def test_minor_gets_the_later_of_adult_and_majority_rules(
    presets: dict[str, Preset], born: date, terminated: date, expected: date
) -> None:
    facts = ClientFacts(date_of_birth=born, termination=terminated)
    decision = decide(facts, date(2019, 9, 1), "progress", _pick(presets, "us_tx_lpc"), TODAY)
    assert decision.destroy_after == expected


def test_unknown_date_of_birth_blocks_a_rule_with_a_minors_clause(presets: dict[str, Preset]) -> None:
    facts = ClientFacts(termination=date(2010, 1, 10))  # the client might have been a child
    decision = decide(facts, date(2009, 9, 1), "progress", _pick(presets, "us_tx_lpc"), TODAY)
    assert decision.destroy_after is None
    assert "date of birth is not recorded" in decision.explain()


@pytest.mark.parametrize(
    ("day", "years", "expected"),
    [
        (date(2020, 2, 29), 4, date(2024, 2, 29)),  # leap year to leap year: unchanged
        (date(2020, 2, 29), 7, date(2027, 3, 1)),  # 2027 has no 29 February: the later day, 1 March
        (date(2020, 2, 28), 1, date(2021, 2, 28)),
        (date(2019, 3, 1), 1, date(2020, 3, 1)),
    ],
)
def test_add_years_rounds_29_february_forward(day: date, years: int, expected: date) -> None:
    assert add_years(day, years) == expected


def test_leap_day_birth_and_termination(presets: dict[str, Preset]) -> None:
    facts = ClientFacts(date_of_birth=date(2008, 2, 29), termination=date(2020, 2, 29))
    decision = decide(facts, date(2020, 2, 1), "progress", _pick(presets, "us_tx_lcsw"), TODAY)
    # 2020-02-29 + 7 y -> 2027-03-01; 18th birthday in 2026 (no 29 Feb) -> 2026-03-01, + 5 y -> 2031-03-01.
    assert decision.destroy_after == date(2031, 3, 1)
    assert "29 February counts as 1 March" in decision.explain()


def test_leap_day_majority_is_stepped_twice(presets: dict[str, Preset]) -> None:
    facts = ClientFacts(date_of_birth=date(2008, 2, 29), last_service=date(2020, 6, 30))
    decision = decide(facts, date(2020, 6, 30), "progress", _pick(presets, "apa_2007"), TODAY)
    # APA: 7 y after 2020-06-30 = 2027-06-30. 21st birthday in 2029 (no 29 Feb) -> 2029-03-01, + 3 y -> 2032-03-01,
    # although 2032 has a 29 February (adding 24 years in one step would give the earlier 2032-02-29).
    assert decision.destroy_after == date(2032, 3, 1)


def test_death_extends_the_maine_period(presets: dict[str, Preset]) -> None:
    maine = _pick(presets, "us_me_sw_private")
    alive = ClientFacts(date_of_birth=date(1960, 1, 1), last_service=date(2020, 5, 1))
    # 7 y after the last service 2020-05-01 = 2027-05-01 (minors' clause: 1978-01-01 + 7 y = 1985-01-01).
    assert decide(alive, date(2020, 5, 1), "progress", maine, TODAY).destroy_after == date(2027, 5, 1)
    died = dataclasses.replace(alive, date_of_death=date(2024, 2, 10))
    # 7 y after death 2024-02-10 = 2031-02-10, later than 2027-05-01.
    decision = decide(died, date(2020, 5, 1), "progress", maine, TODAY)
    assert decision.destroy_after == date(2031, 2, 10)
    assert "7 years after the client's death on 2024-02-10 (2031-02-10)" in decision.explain()


@pytest.mark.parametrize(
    ("died", "expected"),
    [
        # 20 y after 2000-01-01 = 2020-01-01; 10 y after death 2015-06-30 = 2025-06-30 -> later wins (no "if sooner").
        (date(2015, 6, 30), date(2025, 6, 30)),
        # 10 y after death 2005-01-01 = 2015-01-01 is earlier: death never shortens the 20 years.
        (date(2005, 1, 1), date(2020, 1, 1)),
    ],
)
def test_nhs_death_rule_never_shortens(presets: dict[str, Preset], died: date, expected: date) -> None:
    facts = ClientFacts(date_of_birth=date(1950, 3, 3), termination=date(2000, 1, 1), date_of_death=died)
    decision = decide(facts, date(1999, 5, 5), "progress", _pick(presets, "uk_nhs_mental_health"), TODAY)
    assert decision.destroy_after == expected


# --- which rules apply -------------------------------------------------------------------------


def test_california_bbs_applies_only_to_therapy_ended_from_2015(presets: dict[str, Preset]) -> None:
    bbs = _pick(presets, "us_ca_bbs")
    before = ClientFacts(date_of_birth=date(1990, 1, 1), termination=date(2014, 12, 31))
    decision = decide(before, date(2014, 12, 1), "progress", bbs, TODAY)
    assert decision.destroy_after is None and decision.controlling is None  # no rule applies: kept
    assert "us_ca_bbs: does not apply" in decision.explain()
    after = dataclasses.replace(before, termination=date(2015, 1, 1))
    # 2015-01-01 + 7 y = 2022-01-01 (minors' clause: 2008-01-01 + 7 y = 2015-01-01).
    assert decide(after, date(2014, 12, 1), "progress", bbs, TODAY).destroy_after == date(2022, 1, 1)


@pytest.mark.parametrize(
    ("session", "expected"),
    [
        (date(2019, 12, 31), None),  # made before the window: the rule does not reach it
        (date(2020, 1, 1), date(2028, 6, 1)),  # first day (inclusive): 2023-06-01 + 5 y
        (date(2022, 12, 31), date(2028, 6, 1)),  # last day (inclusive)
        (date(2023, 1, 1), None),  # made after the window
    ],
)
def test_effective_window_selects_records_by_session_date(
    presets: dict[str, Preset], session: date, expected: date | None
) -> None:
    windowed = dataclasses.replace(
        presets["us_pa_psychologist"], effective_from=date(2020, 1, 1), effective_until=date(2022, 12, 31)
    )
    decision = decide(ClientFacts(last_service=date(2023, 6, 1)), session, "progress", [windowed], TODAY)
    assert decision.destroy_after == expected
    assert (len(decision.not_applicable) == 1) == (expected is None)


def test_record_class_outside_a_preset_is_not_covered(presets: dict[str, Preset]) -> None:
    progress_only = dataclasses.replace(presets["us_pa_psychologist"], record_classes=("progress",))
    facts = ClientFacts(last_service=date(2020, 1, 1))
    assert decide(facts, date(2020, 1, 1), "progress", [progress_only], TODAY).destroy_after == date(2025, 1, 1)
    decision = decide(facts, date(2020, 1, 1), "psychotherapy", [progress_only], TODAY)
    assert decision.destroy_after is None
    assert "does not cover psychotherapy (process) notes" in decision.explain()


# --- combining rules ---------------------------------------------------------------------------


def test_missing_trigger_fact_means_never_due(presets: dict[str, Preset]) -> None:
    facts = ClientFacts(date_of_birth=date(1970, 1, 1), last_service=date(2010, 1, 1))  # no termination date
    decision = decide(facts, date(2010, 1, 1), "progress", _pick(presets, "apa_2007", "us_tx_lpc"), TODAY)
    # APA alone would allow destruction after 2017-01-01; Texas LPC counts from termination, which is unknown.
    assert decision.per_preset[0].keep_until == date(2017, 1, 1)
    assert decision.destroy_after is None
    assert decision.controlling is presets["us_tx_lpc"]
    assert not is_due(decision, date(2100, 1, 1))
    assert "termination of therapy, which is not recorded for this client" in decision.explain()


def test_latest_of_all_rules_wins_and_names_the_controlling_preset(presets: dict[str, Preset]) -> None:
    facts = ClientFacts(
        date_of_birth=date(1970, 1, 1),
        last_service=date(2026, 5, 10),
        termination=date(2026, 6, 1),
        last_entry=date(2026, 6, 3),
    )
    chosen = _pick(presets, "apa_2007", "us_tx_lpc", "us_pa_psychologist")
    decision = decide(facts, date(2026, 5, 10), "progress", chosen, TODAY)
    # APA: 2026-05-10 + 7 = 2033-05-10; Texas LPC: 2026-06-01 + 7 = 2033-06-01; PA: 2026-05-10 + 5 = 2031-05-10.
    assert [(o.preset_id, o.keep_until) for o in decision.per_preset] == [
        ("apa_2007", date(2033, 5, 10)),
        ("us_tx_lpc", date(2033, 6, 1)),
        ("us_pa_psychologist", date(2031, 5, 10)),
    ]
    assert decision.destroy_after == date(2033, 6, 1)
    assert decision.controlling is presets["us_tx_lpc"]
    text = decision.explain()
    assert text.startswith("Kept until 2033-06-01 under 'Texas LPC' (22 TAC §681.36(b)):")
    assert "the latest of 3 rules that apply" in text
    assert "Not due on 2026-11-27." in text
    again = decide(facts, date(2026, 5, 10), "progress", list(reversed(chosen)), TODAY)
    assert (again.destroy_after, again.controlling) == (decision.destroy_after, decision.controlling)


def test_tie_is_credited_to_a_confirmed_preset(presets: dict[str, Preset]) -> None:
    facts = ClientFacts(date_of_birth=date(1980, 1, 1), last_service=date(2020, 1, 1), last_entry=date(2020, 1, 1))
    decision = decide(facts, date(2020, 1, 1), "progress", _pick(presets, "us_ny_regents", "us_az_health"), TODAY)
    # Both: 2020-01-01 + 6 y = 2026-01-01. New York is unconfirmed, so Arizona is cited.
    assert decision.destroy_after == date(2026, 1, 1)
    assert decision.controlling is presets["us_az_health"]
    assert is_due(decision, TODAY)
    assert "Due for review since 2026-01-02." in decision.explain()


def test_florida_psychologist_stages(presets: dict[str, Preset]) -> None:
    facts = ClientFacts(termination=date(2020, 5, 1), last_service=date(2020, 4, 20), last_entry=date(2020, 5, 4))
    decision = decide(facts, date(2020, 4, 20), "progress", _pick(presets, "us_fl_psychologist"), TODAY)
    # Counts from the latest of the three, 2020-05-04: full record to 2023-05-04 (+3 y), then full or summary
    # to 2027-05-04 (+4 more years), then destroy.
    assert decision.destroy_after == date(2027, 5, 4)
    (outcome,) = decision.per_preset
    assert [(s.keep, end) for s, end in outcome.stages] == [
        ("full", date(2023, 5, 4)),
        ("full_or_summary", date(2027, 5, 4)),
    ]
    assert "the full record until 2023-05-04, then the full record or a summary until 2027-05-04" in outcome.why


def test_period_never_counts_from_before_the_record_itself(presets: dict[str, Preset]) -> None:
    stale = ClientFacts(last_service=date(2020, 1, 10))  # yet this record is from 2020-03-01
    decision = decide(stale, date(2020, 3, 1), "progress", _pick(presets, "us_pa_psychologist"), TODAY)
    # 2020-03-01 + 5 y = 2025-03-01, not 2020-01-10 + 5 y = 2025-01-10.
    assert decision.destroy_after == date(2025, 3, 1)
    assert "counted from this record's session date" in decision.explain()


def test_unfiled_record_or_no_rule_is_never_due(presets: dict[str, Preset]) -> None:
    facts = ClientFacts(last_service=date(2000, 1, 1))
    unfiled = decide(facts, None, "progress", _pick(presets, "us_pa_psychologist"), TODAY)
    assert unfiled.destroy_after is None and "unfiled" in unfiled.explain()
    no_rules = decide(facts, date(2000, 1, 1), "progress", [], TODAY)
    assert no_rules.destroy_after is None and not is_due(no_rules, date(2100, 1, 1))


# --- bad preset files --------------------------------------------------------------------------


def _swap(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text
        return text.replace(old, new, 1)

    return edit


@pytest.mark.parametrize(
    ("name", "edit", "expected"),
    [
        ("us_tx_lpc", _swap("adult_years = 7", 'adult_years = "seven"'), "'adult_years' must be a whole number"),
        ("us_tx_lpc", _swap("adult_years = 7", "adults_years = 7"), "unknown key(s) 'adults_years'"),
        ("us_tx_lpc", _swap('trigger = "termination"', 'trigger = "discharged"'), "'trigger' must be one of"),
        ("us_tx_lpc", _swap('id = "us_tx_lpc"', 'id = "us_tx_lcsw"'), "'id' must match the file name"),
        ("us_tx_lpc", _swap("age_of_majority = 18\n", ""), "must be given together"),
        ("us_tx_lpc", _swap('status = "confirmed"', 'status = "likely"'), "'status' must be one of"),
        ("us_tx_lpc", _swap("id =", "id"), "is not valid TOML"),
        ("us_fl_psychologist", _swap("years = 4", "years = 5"), "'stages' years must add up to adult_years (7)"),
        ("us_fl_psychologist", _swap('keep = "full"', 'kept = "full"'), "stages[0] has unknown key(s) 'kept'"),
    ],
)
def test_malformed_preset_names_file_and_key(
    tmp_path: Path, name: str, edit: Callable[[str], str], expected: str
) -> None:
    bad = tmp_path / f"{name}.toml"
    bad.write_text(edit((DEFAULT_FOLDER / f"{name}.toml").read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_presets(tmp_path)
    assert str(bad) in caught.value.message
    assert expected in caught.value.message


def test_unconfirmed_preset_without_notes_is_refused(tmp_path: Path) -> None:
    text = (DEFAULT_FOLDER / "us_ny_regents.toml").read_text(encoding="utf-8")
    (tmp_path / "us_ny_regents.toml").write_text(text[: text.index("notes =")], encoding="utf-8")
    with pytest.raises(ConfigError, match=r"us_ny_regents\.toml: 'notes' must say what is unconfirmed"):
        load_presets(tmp_path)


def test_folder_of_copies_loads_and_unknown_ids_are_refused(tmp_path: Path) -> None:
    shutil.copy(DEFAULT_FOLDER / "us_ny_regents.toml", tmp_path)
    loaded = load_presets(tmp_path)
    assert list(loaded) == ["us_ny_regents"] and not loaded["us_ny_regents"].confirmed
    with pytest.raises(ConfigError, match="'us_xx_typo'"):
        select_presets(loaded, ["us_ny_regents", "us_xx_typo"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no preset files"):
        load_presets(tmp_path / "empty")
