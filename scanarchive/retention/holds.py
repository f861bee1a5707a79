"""Legal holds: named, with a reason; a held record cannot be destroyed by any path.

Placing and releasing a hold change state, so `place` and `release` write their
audit entries (`hold_place`, `hold_release`) themselves. Both need the identity: the
change is signed into decisions/checkpoint.json (archive/checkpoint.py), and the reason
is sealed to the recipient (`Hold.reason` is the sealed form; `reason_of` opens it).
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass

from scanarchive.archive import checkpoint
from scanarchive.archive.catalog import Catalog, RecordRow
from scanarchive.archive.layout import Archive
from scanarchive.clock import now_utc
from scanarchive.crypto.keys import Identity
from scanarchive.errors import RecordNotFound, UsageError
from scanarchive.names import TOKEN


@dataclass(frozen=True)
class Hold:
    name: str
    client_code: str | None
    record_id: str | None
    reason: str  # sealed ("sealed-1:…"), or plaintext in an archive not upgraded yet
    placed_by: str
    placed_at: str


def active(catalog: Catalog) -> list[Hold]:
    rows = catalog.db.execute(
        "SELECT name, client_code, record_id, reason, placed_by, placed_at FROM holds"
        " WHERE released_at IS NULL ORDER BY placed_at"
    )
    return [Hold(*r) for r in rows]


def check_name(name: str) -> str:
    """A hold name, checked before anything is written: it goes into the audit log as a token."""
    if not TOKEN.fullmatch(name):
        raise UsageError("a hold name is 1-64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit")
    return name


def reason_of(identity: Identity, hold: Hold) -> str:
    """The hold's reason in clear (it is stored sealed to the recipient)."""
    return checkpoint.open_reason(identity, hold.name, hold.reason)


def place(
    archive: Archive, name: str, reason: str, *, client: str | None, record: str | None, identity: Identity
) -> Hold:
    """Place a named hold on one client or one record; audited as `hold_place` (the name, the client or record)."""
    check_name(name)
    catalog = archive.catalog
    if (client is None) == (record is None):
        raise UsageError("a hold covers either one client (--client) or one record (--record)")
    if not reason.strip():
        raise UsageError("a hold needs a reason", hint="e.g. --reason 'subpoena received 2026-11-27'")
    if record is not None:
        record = catalog.record(record).id
    with catalog.transaction() as db:
        if db.execute("SELECT 1 FROM holds WHERE name = ? AND released_at IS NULL", (name,)).fetchone():
            raise UsageError(f"a hold named {name!r} is already in place", hint="Choose another name.")
        added = db.execute(
            "INSERT INTO holds(name, client_code, record_id, reason, placed_by, placed_at) VALUES (?,?,?,?,?,?)",
            (
                name,
                client,
                record,
                checkpoint.seal_reason(identity.recipient, name, reason),
                getpass.getuser(),
                now_utc(),
            ),
        )
        checkpoint.update(archive, identity, holds=[str(added.lastrowid)])
    placed = next(h for h in active(catalog) if h.name == name)
    archive.audit(
        "hold_place",
        hold=check_name(placed.name),
        **({"client": placed.client_code} if placed.client_code else {"record": placed.record_id}),
    )
    return placed


def release(archive: Archive, name: str, *, identity: Identity) -> None:
    """Release the hold in place under this name; audited as `hold_release`."""
    with archive.catalog.transaction() as db:
        row = db.execute("SELECT id FROM holds WHERE name = ? AND released_at IS NULL", (name,)).fetchone()
        if row is None:
            raise RecordNotFound(
                f"there is no hold named {name!r} in place", hint="List them with 'scanarchive hold list'."
            )
        db.execute("UPDATE holds SET released_at = ? WHERE id = ?", (now_utc(), row[0]))
        checkpoint.update(archive, identity, holds=[str(row[0])])
    archive.audit("hold_release", hold=check_name(name))


def holding(holds: list[Hold], record: RecordRow) -> list[Hold]:
    return [h for h in holds if h.record_id == record.id or (h.client_code and h.client_code == record.client_code)]
