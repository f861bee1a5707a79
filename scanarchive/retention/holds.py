"""Legal holds: named, with a reason; a held record cannot be destroyed by any path."""

from __future__ import annotations

import getpass
from dataclasses import dataclass

from scanarchive.archive.catalog import Catalog, RecordRow
from scanarchive.clock import now_utc
from scanarchive.errors import RecordNotFound, UsageError


@dataclass(frozen=True)
class Hold:
    name: str
    client_code: str | None
    record_id: str | None
    reason: str
    placed_by: str
    placed_at: str


def active(catalog: Catalog) -> list[Hold]:
    rows = catalog.db.execute(
        "SELECT name, client_code, record_id, reason, placed_by, placed_at FROM holds"
        " WHERE released_at IS NULL ORDER BY placed_at"
    )
    return [Hold(*r) for r in rows]


def place(catalog: Catalog, name: str, reason: str, *, client: str | None, record: str | None) -> Hold:
    if (client is None) == (record is None):
        raise UsageError("a hold covers either one client (--client) or one record (--record)")
    if not reason.strip():
        raise UsageError("a hold needs a reason", hint="e.g. --reason 'subpoena received 2026-11-27'")
    if record is not None:
        record = catalog.record(record).id
    with catalog.transaction() as db:
        if db.execute("SELECT 1 FROM holds WHERE name = ? AND released_at IS NULL", (name,)).fetchone():
            raise UsageError(f"a hold named {name!r} is already in place", hint="Choose another name.")
        db.execute(
            "INSERT INTO holds(name, client_code, record_id, reason, placed_by, placed_at) VALUES (?,?,?,?,?,?)",
            (name, client, record, reason, getpass.getuser(), now_utc()),
        )
    return next(h for h in active(catalog) if h.name == name)


def release(catalog: Catalog, name: str) -> None:
    with catalog.transaction() as db:
        done = db.execute("UPDATE holds SET released_at = ? WHERE name = ? AND released_at IS NULL", (now_utc(), name))
        if done.rowcount == 0:
            raise RecordNotFound(
                f"there is no hold named {name!r} in place", hint="List them with 'scanarchive hold list'."
            )


def holding(holds: list[Hold], record: RecordRow) -> list[Hold]:
    return [h for h in holds if h.record_id == record.id or (h.client_code and h.client_code == record.client_code)]
