"""Claiming scans out of the drop folder, journalled so a crash never loses or duplicates one.

States of a journal row (table `journal` in catalog.db), and what recovery does:

    claiming  row written, rename not known to have happened
              -> journal file there: claimed; else: row dropped (the scan is still in the drop folder)
    copying   (drop folder on another filesystem) copy in progress
              -> complete copy there: claimed, source removed; else: partial copy and row dropped
    claimed   the scan is in journal/<claim>.scan and waits to be processed (also after a
              transient failure, with attempts and next_attempt set)
    quarantining  being sealed into the quarantine -> done if the quarantine has it, else again

The row is always written (and committed) *before* the file moves, and the
file is always in exactly one of drop folder / journal at any moment.
Processing a claimed scan again after a crash is idempotent: ingest finds an
existing record by the scan's SHA-256 and makes no second one.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scanarchive.archive.catalog import Catalog
from scanarchive.clock import now_utc
from scanarchive.errors import TransientError
from scanarchive.fsio import fsync_dir

log = logging.getLogger(__name__)
RecordLookup = Callable[[str], bool]  # sha256 of a scan -> is it archived (or quarantined)?


@dataclass(frozen=True)
class Claim:
    claim_id: str
    source_name: str
    source_path: str
    sha256: str | None
    size: int | None
    state: str
    attempts: int
    next_attempt: float
    last_error: str


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fp:
        for block in iter(lambda: fp.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Journal:
    def __init__(self, root: Path, catalog: Catalog) -> None:
        self.dir = root / "journal"
        self.dir.mkdir(mode=0o700, exist_ok=True)
        self.catalog = catalog

    def path_of(self, claim: Claim | str) -> Path:
        claim_id = claim if isinstance(claim, str) else claim.claim_id
        return self.dir / f"{claim_id}.scan"

    # --- rows -----------------------------------------------------------------

    def _row(self, claim_id: str) -> Claim | None:
        row = self.catalog.db.execute("SELECT * FROM journal WHERE claim_id = ?", (claim_id,)).fetchone()
        if row is None:
            return None
        return Claim(
            row["claim_id"],
            row["source_name"],
            row["source_path"],
            row["sha256"],
            row["size"],
            row["state"],
            row["attempts"],
            row["next_attempt"],
            row["last_error"],
        )

    def claims(self) -> list[Claim]:
        ids = [r[0] for r in self.catalog.db.execute("SELECT claim_id FROM journal ORDER BY claimed_at, claim_id")]
        return [c for c in (self._row(i) for i in ids) if c is not None]

    def _set(self, claim_id: str, **fields: object) -> Claim:
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.catalog.transaction() as db:
            db.execute(
                f"UPDATE journal SET {sets}, updated_at = ? WHERE claim_id = ?",  # noqa: S608 - field names are ours
                (*fields.values(), now_utc(), claim_id),
            )
        claim = self._row(claim_id)
        assert claim is not None
        return claim

    def _drop_row(self, claim_id: str) -> None:
        with self.catalog.transaction() as db:
            db.execute("DELETE FROM journal WHERE claim_id = ?", (claim_id,))

    # --- claiming -------------------------------------------------------------

    def claim(self, source: Path) -> Claim | None:
        """Move a settled scan into the journal. None if it vanished meanwhile."""
        claim_id = str(uuid.uuid4())
        same_fs = os.stat(source.parent).st_dev == os.stat(self.dir).st_dev
        with self.catalog.transaction() as db:
            db.execute(
                "INSERT INTO journal(claim_id, source_name, source_path, state, claimed_at, updated_at)"
                " VALUES (?,?,?,?,?,?)",
                (claim_id, source.name, str(source), "claiming" if same_fs else "copying", now_utc(), now_utc()),
            )
        target = self.path_of(claim_id)
        try:
            if same_fs:
                os.rename(source, target)  # atomic: the scan is in the drop folder or here, never both
                fsync_dir(self.dir)
                fsync_dir(source.parent)
            else:
                self._copy_claim(source, target)
        except FileNotFoundError:
            self._drop_row(claim_id)
            return None
        except OSError as exc:
            Path(str(target) + ".part").unlink(missing_ok=True)
            self._drop_row(claim_id)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise TransientError("the disk holding the archive is full; the scan stays in the drop folder") from exc
            raise
        return self._set(claim_id, state="claimed", sha256=file_sha256(target), size=target.stat().st_size)

    def _copy_claim(self, source: Path, target: Path) -> None:
        """Across filesystems (an SMB/NFS drop folder): copy -> fsync -> verify -> rename -> unlink."""
        part = Path(str(target) + ".part")
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with source.open("rb") as src, os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        if file_sha256(part) != file_sha256(source):
            part.unlink()
            raise FileNotFoundError("the scan changed while it was copied")  # treated as "not claimed yet"
        os.rename(part, target)
        fsync_dir(self.dir)
        source.unlink()
        fsync_dir(source.parent)

    # --- after processing -----------------------------------------------------

    def finish(self, claim: Claim) -> None:
        """The scan is a verified record or sealed in quarantine: forget it."""
        self.path_of(claim).unlink(missing_ok=True)
        fsync_dir(self.dir)
        self._drop_row(claim.claim_id)

    def defer(self, claim: Claim, reason: str, delay: float) -> Claim:
        return self._set(
            claim.claim_id, attempts=claim.attempts + 1, next_attempt=time.time() + delay, last_error=reason
        )

    def mark(self, claim: Claim, state: str, reason: str = "") -> Claim:
        return self._set(claim.claim_id, state=state, last_error=reason)

    # --- recovery ---------------------------------------------------------------

    def recover(self, record_exists: RecordLookup, quarantined: RecordLookup) -> list[Claim]:
        """Bring every row to 'claimed' or remove it; return the claims still to process."""
        todo: list[Claim] = []
        for claim in self.claims():
            path = self.path_of(claim)
            part = Path(str(path) + ".part")
            source = Path(claim.source_path)
            if claim.state in ("claiming", "copying"):
                part.unlink(missing_ok=True)
                if not path.exists():
                    self._drop_row(claim.claim_id)  # never moved: it is still in the drop folder
                    continue
                sha = file_sha256(path)
                if claim.state == "copying" and source.exists() and file_sha256(source) == sha:
                    source.unlink()
                    fsync_dir(source.parent)
                claim = self._set(claim.claim_id, state="claimed", sha256=sha, size=path.stat().st_size)
            if not path.exists():
                if claim.sha256 and (record_exists(claim.sha256) or quarantined(claim.sha256)):
                    self._drop_row(claim.claim_id)  # finished just before the crash
                else:
                    log.error("claim %s: its scan is missing from the journal and no record holds it", claim.claim_id)
                    self._set(claim.claim_id, last_error="scan missing from the journal", next_attempt=1e18)
                continue
            todo.append(claim)
        return todo

    def due(self, now: float | None = None) -> list[Claim]:
        now = time.time() if now is None else now
        return [c for c in self.claims() if c.state in ("claimed", "quarantining") and c.next_attempt <= now]

    def next_due(self) -> float | None:
        row = self.catalog.db.execute(
            "SELECT MIN(next_attempt) FROM journal WHERE state IN ('claimed', 'quarantining')"
        ).fetchone()
        return None if row[0] is None else float(row[0])
