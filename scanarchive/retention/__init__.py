"""Retention: legal rules as data (presets) and the date arithmetic that applies them to records."""

from __future__ import annotations

from scanarchive.retention.policy import ClientFacts, Decision, RuleOutcome, add_years, decide, is_due
from scanarchive.retention.presets import DEFAULT_FOLDER, Preset, Stage, load_preset, load_presets, select_presets

__all__ = [
    "DEFAULT_FOLDER",
    "ClientFacts",
    "Decision",
    "Preset",
    "RuleOutcome",
    "Stage",
    "add_years",
    "decide",
    "is_due",
    "load_preset",
    "load_presets",
    "select_presets",
]
