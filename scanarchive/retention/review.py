"""Which records are due, and why: the review queue behind `retention due`, `approve` and `purge`.

A record is destroyed only when ALL hold:
  - it is filed (client and session date known): unfiled records are never due;
  - the latest date over every preset in force has passed (policy.decide);
  - no legal hold covers it (its client or itself);
  - it is approved for that same date, unless the practice chose automatic disposal.

Also here: which presets are in force (`presets_in_force`), and putting a list
of them in force (`use_presets`, which rewrites config.toml and is audited as
`retention`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from scanarchive.archive import checkpoint
from scanarchive.archive.catalog import RecordRow
from scanarchive.archive.layout import Archive
from scanarchive.config import set_retention
from scanarchive.crypto.keys import Identity
from scanarchive.errors import ConfigError, UsageError
from scanarchive.retention import clients, holds
from scanarchive.retention.policy import ClientFacts, Decision, decide, is_due
from scanarchive.retention.presets import DEFAULT_FOLDER, Preset, load_presets, select_presets


@dataclass(frozen=True)
class Review:
    record: RecordRow
    decision: Decision
    holds: tuple[holds.Hold, ...]
    approved_by: str | None
    approved_at: str | None

    @property
    def due(self) -> bool:
        return is_due(self.decision, self.decision.decided_on)

    def verdict(self, approval: str) -> tuple[bool, str]:
        """(destroy now?, the reason in plain words)."""
        if not self.due:
            return False, self.decision.explain().splitlines()[0]
        if self.holds:
            names = ", ".join(f"'{h.name}'" for h in self.holds)
            return False, f"Due since after {self.decision.destroy_after}, but on legal hold {names}: kept."
        if approval == "required" and self.approved_by is None:
            return False, f"Due since after {self.decision.destroy_after}; waiting for approval (retention approve)."
        who = self.approved_by or "automatic disposal (config)"
        return True, f"Due since after {self.decision.destroy_after}; approved by {who}: destroy."


def require_rules(archive: Archive) -> None:
    """With no retention rule in force nothing can be judged due (and purge refuses to run): saying
    "no record is due" then would be a false all-clear."""
    if not archive.config.retention.presets:
        raise ConfigError(
            "no retention rules are in force, so no record can be judged due (and purge refuses to run)",
            hint="See the rules with 'scanarchive retention presets', then put those that bind the practice in "
            "force: scanarchive retention use PRESET…",
        )


def presets_in_force(archive: Archive, folder: Path | None = None) -> list[Preset]:
    settings = archive.config.retention
    chosen = select_presets(load_presets(folder or DEFAULT_FOLDER), list(settings.presets))
    unconfirmed = [p.id for p in chosen if not p.confirmed]
    if unconfirmed and not settings.allow_unconfirmed:
        raise ConfigError(
            f"the preset(s) {', '.join(unconfirmed)} are unconfirmed and allow_unconfirmed is false",
            hint="Check them against the official text, then 'scanarchive retention use … --allow-unconfirmed'.",
        )
    return chosen


def choose_presets(ids: list[str], *, allow_unconfirmed: bool) -> list[Preset]:
    """The shipped presets named by `ids`, in that order; unconfirmed ones only with allow_unconfirmed.

    Writes nothing: `use_presets` calls it, and so can a caller that checks the choice before
    opening an archive."""
    chosen = select_presets(load_presets(), ids)
    unconfirmed = [p.id for p in chosen if not p.confirmed]
    if unconfirmed and not allow_unconfirmed:
        raise ConfigError(
            f"{', '.join(unconfirmed)} {'is' if len(unconfirmed) == 1 else 'are'} unconfirmed",
            hint="Check the rule against the official text; then add --allow-unconfirmed.",
        )
    return chosen


def use_presets(archive: Archive, ids: list[str], *, allow_unconfirmed: bool, identity: Identity) -> list[Preset]:
    """Put these presets in force (replacing the list in config.toml), signed; audited as `retention`.

    allow_unconfirmed is written as true exactly when an unconfirmed preset is among them. The approval
    mode written is the signed one (an unsigned edit of it is undone here, never signed along)."""
    chosen = choose_presets(ids, allow_unconfirmed=allow_unconfirmed)
    with archive.catalog.transaction():
        signed = checkpoint.signed_retention(archive)
        set_retention(
            archive.root / "config.toml",
            [p.id for p in chosen],
            any(not p.confirmed for p in chosen),
            None if signed is None else str(signed["approval"]),
        )
        checkpoint.update(archive, identity, retention=True)
    archive.audit("retention", presets=[p.id for p in chosen])
    return chosen


def set_approval(archive: Archive, mode: str, *, identity: Identity) -> None:
    """Set [retention] approval ("required" or "automatic"), signed; audited as `retention` (code = the mode).
    The presets written are the signed ones (an unsigned edit of them is undone, never signed along)."""
    if mode not in ("required", "automatic"):
        raise UsageError('the approval mode is "required" or "automatic"')
    with archive.catalog.transaction():
        signed = checkpoint.signed_retention(archive)
        current = archive.config.retention
        presets = list(current.presets) if signed is None else [str(p) for p in signed["presets"]]
        allow = current.allow_unconfirmed if signed is None else bool(signed["allow_unconfirmed"])
        set_retention(archive.root / "config.toml", presets, allow, mode)
        checkpoint.update(archive, identity, retention=True)
    archive.audit("retention", presets=presets, code=mode)


def re_sign(archive: Archive, *, identity: Identity) -> None:
    """Sign every decision as it stands now (after a person checked them), re-pin the decision key and
    accept the catalog's current state as the newest; audited as `retention` (code = re-sign)."""
    with archive.catalog.transaction():
        checkpoint.update(archive, identity, rebuild=True)
    archive.audit("retention", presets=list(archive.config.retention.presets), code="re-sign")


def review_all(archive: Archive, today: date, presets: list[Preset]) -> list[Review]:
    in_force = holds.active(archive.catalog)
    approvals = {
        r[0]: (r[1], r[2], r[3])
        for r in archive.catalog.db.execute("SELECT record_id, approved_by, approved_at, destroy_after FROM approvals")
    }
    facts_by_client: dict[str, ClientFacts] = {}
    reviews = []
    for record in archive.catalog.records():
        facts = ClientFacts()
        if record.client_code is not None:
            if record.client_code not in facts_by_client:
                facts_by_client[record.client_code] = clients.get(
                    archive.catalog, record.client_code, must_exist=False
                ).facts()
            facts = facts_by_client[record.client_code]
        session = date.fromisoformat(record.session_date) if record.filed and record.session_date else None
        decision = decide(facts, session, record.record_class, presets, today)  # type: ignore[arg-type]
        approved = approvals.get(record.id)
        # An approval holds only for the date it was given for: new facts mean a new review.
        if approved is not None and (
            decision.destroy_after is None or approved[2] != decision.destroy_after.isoformat()
        ):
            approved = None
        reviews.append(
            Review(
                record,
                decision,
                tuple(holds.holding(in_force, record)),
                approved[0] if approved else None,
                approved[1] if approved else None,
            )
        )
    return reviews
