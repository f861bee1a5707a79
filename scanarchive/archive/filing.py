"""Filing a record: setting its client, session date or class (catalog table `changes` keeps each change).

`file_record` is the one way a record's metadata changes from outside ingest;
it is audited as `file` (the record, the fields that changed, its client code).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from scanarchive.archive.catalog import RecordRow
from scanarchive.archive.layout import Archive
from scanarchive.errors import RecordNotFound, UsageError

Change = tuple[str, str | None, str | None, str]  # field, old value, new value, when (UTC)


@dataclass(frozen=True)
class Filed:
    record: RecordRow  # as it is now
    changes: list[Change]  # what this call changed (empty: it already had those values)


FIND_RECORDS_HINT = (
    "A record id is the long id 'scanarchive search' and 'scanarchive inbox' print (its first 8 characters "
    "are enough). List a client's notes with 'scanarchive search --client CODE', unfiled ones with "
    "'scanarchive inbox'."
)


def find_record(archive: Archive, record_id: str) -> RecordRow:
    """A record by its id or a unique prefix of 8+ characters; an unknown one says where ids are listed."""
    try:
        return archive.catalog.record(record_id)
    except RecordNotFound as exc:
        if len(record_id) < 8:
            raise RecordNotFound(
                f"there is no record {record_id!r} in this archive (an id needs at least its first 8 characters)",
                hint=FIND_RECORDS_HINT,
            ) from exc
        matches = archive.catalog.db.execute(
            "SELECT count(*) FROM records WHERE id LIKE ? || '%'", (record_id,)
        ).fetchone()[0]
        if matches > 1:
            raise RecordNotFound(
                f"{record_id!r} is the start of {matches} records' ids", hint="Give more of the id, or all of it."
            ) from exc
        raise RecordNotFound(exc.message, hint=FIND_RECORDS_HINT) from exc


def check_session_date(day: str, *, allow_future: bool, today: date | None = None) -> str:
    """A session date as entered (YYYY-MM-DD); one after today is refused unless allow_future: a slip
    of the year would move the note's destruction date by years, silently."""
    when = date.fromisoformat(day)
    today = date.today() if today is None else today
    if when > today and not allow_future:
        raise UsageError(
            f"the session date {when.isoformat()} is after today ({today.isoformat()}); nothing was changed",
            hint="Check the year and the month. If the date really is in the future, add --allow-future.",
        )
    return when.isoformat()


def changes(
    *, client: str | None, session_date: str | None, record_class: str | None, allow_future: bool = False
) -> dict[str, str | None]:
    """The catalog fields to set; at least one is needed. A session date after today is refused
    unless allow_future."""
    wanted: dict[str, str | None] = {}
    if client:
        wanted["client_code"] = client
    if session_date:
        wanted["session_date"] = check_session_date(session_date, allow_future=allow_future)
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
    allow_future: bool = False,
) -> Filed:
    """Set a record's client code, session date and/or class (record_id: an id or a unique prefix).
    A session date after today is refused unless allow_future."""
    wanted = changes(client=client, session_date=session_date, record_class=record_class, allow_future=allow_future)
    record = find_record(archive, record_id)
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
