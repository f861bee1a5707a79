"""Filing a record: setting its client, session date or class (catalog table `changes` keeps each change).

`file_record` is the one way a record's metadata changes from outside ingest;
it is audited as `file` (the record, the fields that changed, its client code).
"""

from __future__ import annotations

from dataclasses import dataclass

from scanarchive.archive.catalog import RecordRow
from scanarchive.archive.layout import Archive
from scanarchive.errors import UsageError

Change = tuple[str, str | None, str | None, str]  # field, old value, new value, when (UTC)


@dataclass(frozen=True)
class Filed:
    record: RecordRow  # as it is now
    changes: list[Change]  # what this call changed (empty: it already had those values)


def changes(*, client: str | None, session_date: str | None, record_class: str | None) -> dict[str, str | None]:
    """The catalog fields to set; at least one is needed."""
    wanted: dict[str, str | None] = {}
    if client:
        wanted["client_code"] = client
    if session_date:
        wanted["session_date"] = session_date
    if record_class:
        wanted["record_class"] = record_class
    if not wanted:
        raise UsageError("nothing to change", hint="Give --client, --date and/or --class.")
    return wanted


def file_record(
    archive: Archive,
    record_id: str,
    *,
    client: str | None = None,
    session_date: str | None = None,
    record_class: str | None = None,
) -> Filed:
    """Set a record's client code, session date and/or class (record_id: an id or a unique prefix)."""
    wanted = changes(client=client, session_date=session_date, record_class=record_class)
    record = archive.catalog.record(record_id)
    before = len(archive.catalog.history(record.id))
    with archive.catalog.transaction():
        archive.catalog.file_record(record.id, wanted)
    updated = archive.catalog.record(record.id)
    made = archive.catalog.history(record.id)[before:]
    archive.audit(
        "file",
        record=record.id,
        fields=[m[0] for m in made],
        **({"client": updated.client_code} if updated.client_code else {}),
    )
    return Filed(updated, made)
