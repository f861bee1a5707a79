"""Clients and their retention trigger facts (catalog table `clients`). Codes only, never names.

Last service and last entry are derived from the client's session dates unless
the practice sets them; every other fact (birth, termination, death) must be
recorded explicitly, and a missing fact never lets a record go.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from scanarchive.archive import checkpoint
from scanarchive.archive.catalog import Catalog
from scanarchive.archive.layout import Archive
from scanarchive.clock import now_utc
from scanarchive.crypto.keys import Identity
from scanarchive.errors import IntegrityError, RecordNotFound, UsageError
from scanarchive.retention.policy import ClientFacts

FACTS = ("date_of_birth", "termination", "date_of_death", "last_entry", "last_service")
UNKNOWN_CLIENT_HINT = (
    "Check the code: 'scanarchive client list' lists every client. A new client is added with "
    "'scanarchive client add CODE'."
)


@dataclass(frozen=True)
class Client:
    code: str
    recorded: dict[str, str | None]  # what the practice entered
    latest_session: str | None  # derived from the records

    def facts(self) -> ClientFacts:
        def day(name: str, derived: str | None = None) -> date | None:
            value = self.recorded.get(name) or derived
            return date.fromisoformat(value) if value else None

        return ClientFacts(
            date_of_birth=day("date_of_birth"),
            termination=day("termination"),
            date_of_death=day("date_of_death"),
            last_entry=day("last_entry", self.latest_session),
            last_service=day("last_service", self.latest_session),
        )


def _latest_session(catalog: Catalog, code: str) -> str | None:
    row = catalog.db.execute("SELECT MAX(session_date) FROM records WHERE client_code = ?", (code,)).fetchone()
    return None if row[0] is None else str(row[0])


def get(catalog: Catalog, code: str, *, must_exist: bool = True) -> Client:
    """A client's facts; with must_exist=False an unknown code has no recorded facts (so: never due)."""
    row = catalog.db.execute("SELECT * FROM clients WHERE code = ?", (code,)).fetchone()
    recorded = {name: (row[name] if row is not None else None) for name in FACTS}
    known = row is not None or _latest_session(catalog, code) is not None
    if must_exist and not known:
        raise RecordNotFound(f"there is no client {code!r} in this archive", hint=UNKNOWN_CLIENT_HINT)
    return Client(code, recorded, _latest_session(catalog, code))


def codes(catalog: Catalog) -> list[str]:
    rows = catalog.db.execute(
        "SELECT code FROM clients UNION SELECT client_code FROM records WHERE client_code IS NOT NULL ORDER BY 1"
    )
    return [str(r[0]) for r in rows]


def save(archive: Archive, code: str, facts: dict[str, str | None], *, create: bool, identity: Identity) -> None:
    """Add a client (create) or change a known one's facts (a value of '' clears a fact), in one
    transaction, signed. Changing a client that is neither recorded nor on any note is refused.

    A client whose facts were changed without the passphrase is changed only when every fact is
    given (so nothing forged is signed along). Audited as `client` (the code and the names of the
    facts given, never their values)."""
    unknown = set(facts) - set(FACTS)
    if unknown:
        raise UsageError(f"unknown client fact(s): {', '.join(sorted(unknown))}")
    with archive.catalog.transaction() as db:
        exists = db.execute("SELECT 1 FROM clients WHERE code = ?", (code,)).fetchone() is not None
        if create and exists:
            raise UsageError(f"client {code} already exists", hint="Change its facts with 'scanarchive client set'.")
        if not create and not exists and _latest_session(archive.catalog, code) is None:
            # a mistyped code would otherwise become a new client, and the real one keep its old dates
            raise RecordNotFound(
                f"there is no client {code!r} in this archive; nothing was changed", hint=UNKNOWN_CLIENT_HINT
            )
        if set(facts) != set(FACTS) and not checkpoint.item_intact(archive, "clients", code):
            raise IntegrityError(
                f"the retention facts of client {code} were changed without the passphrase",
                hint="Check them ('scanarchive client show'), then set every fact: --born, --terminated, --died, "
                "--last-entry and --last-service ('' for none).",
            )
        if not exists:
            db.execute("INSERT INTO clients(code, created_at, updated_at) VALUES (?,?,?)", (code, now_utc(), now_utc()))
        for name, value in facts.items():
            db.execute(
                f"UPDATE clients SET {name} = ?, updated_at = ? WHERE code = ?",  # noqa: S608 - allow-listed
                (value or None, now_utc(), code),
            )
        checkpoint.update(archive, identity, clients=[code])
    archive.audit("client", client=code, fields=sorted(facts))
