"""Approving the destruction of due records (catalog table `approvals`).

An approval is given for one record and one destroy-after date: when the
record's facts change, so does the date, and the approval no longer counts
(review.review_all). An approval is signed (archive/checkpoint.py), so it needs the
identity; the digest covers the record's filing too. Approving is audited as `approve` (record ids and a count;
never who approved: that name is kept in the catalog and the certificate).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from scanarchive.archive import checkpoint
from scanarchive.archive.layout import Archive
from scanarchive.clock import now_utc
from scanarchive.crypto.keys import Identity
from scanarchive.errors import UsageError
from scanarchive.retention import review


def approve(
    archive: Archive, records: Sequence[str] | None, *, by: str, today: date, identity: Identity
) -> list[review.Review]:
    """Approve the destruction of these records (ids or unique prefixes), or of every due record when
    `records` is None. Every record named must be due; nothing is approved otherwise.

    Returns the reviews of the records approved (some may be on legal hold: they stay until released)."""
    if records is not None and not records:
        raise UsageError("name the records to approve, or give --all-due")
    reviews = {r.record.id: r for r in review.review_all(archive, today, review.presets_in_force(archive))}
    wanted = (
        [r for r in reviews.values() if r.due]
        if records is None
        else [reviews[archive.catalog.record(rid).id] for rid in records]
    )
    for r in wanted:
        if not r.due:
            raise UsageError(f"record {r.record.id} is not due: {r.decision.explain().splitlines()[0]}")
    with archive.catalog.transaction() as db:
        for r in wanted:
            db.execute(
                "INSERT OR REPLACE INTO approvals(record_id, approved_by, approved_at, destroy_after) VALUES (?,?,?,?)",
                (r.record.id, by, now_utc(), str(r.decision.destroy_after)),
            )
        checkpoint.update(archive, identity, approvals=[r.record.id for r in wanted])
    archive.audit("approve", records=[r.record.id for r in wanted], count=len(wanted))
    return wanted
