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
import logging
import os
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from scanarchive.archive.catalog import Catalog
from scanarchive.clock import now_utc
from scanarchive.errors import InputRejected, TransientError
from scanarchive.fsio import check_regular, fsync_dir, make_dir, open_dir, open_regular, stream_fd
from scanarchive.intake.refuse import set_aside
from scanarchive.names import printable

log = logging.getLogger(__name__)
RecordLookup = Callable[[str], bool]  # sha256 of a scan -> is it archived (or quarantined)?
# (folder descriptor, name in it, the scan's path in the drop folder, plain reason) -> put it aside unread
Refuser = Callable[[int, str, Path, str], None]


def default_refuser(dir_fd: int, name: str, source: Path, reason: str) -> None:
    where = set_aside(source.parent, dir_fd, name, source.name, reason)
    folder = str(Path(where).parent) if where else "(it is gone)"
    log.warning("refused a file from the drop folder, unread (%s); put aside in %s", printable(reason), printable(folder))


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


def file_sha256(path: Path, max_bytes: int | None = None, *, dir_fd: int | None = None) -> str:
    """Streamed from one O_NOFOLLOW|O_NONBLOCK descriptor; InputRejected for anything not a regular file."""
    fd, _ = open_regular(path, max_bytes, dir_fd=dir_fd)
    try:
        return stream_fd(fd, limit=max_bytes)[0]
    finally:
        os.close(fd)


class Journal:
    def __init__(
        self, root: Path, catalog: Catalog, *, max_bytes: int | None = None, refuse: Refuser | None = None
    ) -> None:
        self.dir = root / "journal"
        with suppress(FileExistsError):
            make_dir(self.dir, 0o700)  # in a setgid archive (separated accounts): its mode and group
        self.catalog = catalog
        self.max_bytes = max_bytes
        self.refuse = refuse or default_refuser

    @contextmanager
    def _dir_fd(self, path: Path | None = None) -> Iterator[int]:
        fd = open_dir(path or self.dir)
        try:
            yield fd
        finally:
            os.close(fd)

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

    def claim(self, source: Path, expect: tuple[int, int] | None = None) -> Claim | None:
        """Move a settled scan into the journal. None if it vanished, changed, or was refused (then it
        was put aside unread, see refuse.py). `expect`: the (st_dev, st_ino) settling saw."""
        with self._dir_fd(source.parent) as drop_fd, self._dir_fd() as journal_fd:
            try:
                fd, st = open_regular(source.name, self.max_bytes, dir_fd=drop_fd)
            except FileNotFoundError:
                return None
            except InputRejected as exc:
                self.refuse(drop_fd, source.name, source, exc.message)
                return None
            try:
                if expect is not None and (st.st_dev, st.st_ino) != expect:
                    log.info("a file in the drop folder was replaced after it settled; it is looked at again")
                    return None
                return self._claim(source, fd, st, drop_fd, journal_fd)
            finally:
                os.close(fd)

    def _claim(self, source: Path, fd: int, st: os.stat_result, drop_fd: int, journal_fd: int) -> Claim | None:
        claim_id = str(uuid.uuid4())
        same_fs = st.st_dev == os.fstat(journal_fd).st_dev
        with self.catalog.transaction() as db:
            db.execute(
                "INSERT INTO journal(claim_id, source_name, source_path, state, claimed_at, updated_at)"
                " VALUES (?,?,?,?,?,?)",
                (claim_id, source.name, str(source), "claiming" if same_fs else "copying", now_utc(), now_utc()),
            )
        target = f"{claim_id}.scan"
        try:
            if same_fs:
                # atomic: the scan is in the drop folder or here, never both; names resolved in checked folders
                os.rename(source.name, target, src_dir_fd=drop_fd, dst_dir_fd=journal_fd)
                os.fsync(journal_fd)
                os.fsync(drop_fd)
                moved = os.stat(target, dir_fd=journal_fd, follow_symlinks=False)
                if (moved.st_dev, moved.st_ino) != (st.st_dev, st.st_ino):
                    self.refuse(journal_fd, target, source, "it was replaced by another file while it was being taken")
                    self._drop_row(claim_id)
                    return None
                try:
                    sha, size = stream_fd(fd, limit=self.max_bytes)  # the very file that was checked
                except InputRejected as exc:
                    self.refuse(journal_fd, target, source, exc.message)
                    self._drop_row(claim_id)
                    return None
            else:
                try:
                    claimed = self._copy_claim(fd, st, drop_fd, source.name, journal_fd, target)
                except InputRejected as exc:
                    self._drop_row(claim_id)
                    self.refuse(drop_fd, source.name, source, exc.message)
                    return None
                if claimed is None:
                    self._drop_row(claim_id)
                    return None
                sha, size = claimed
        except FileNotFoundError:
            self._drop_row(claim_id)
            return None
        except OSError as exc:
            _unlink_in(journal_fd, target + ".part")
            self._drop_row(claim_id)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise TransientError("the disk holding the archive is full; the scan stays in the drop folder") from exc
            raise
        return self._set(claim_id, state="claimed", sha256=sha, size=size)

    def _copy_claim(
        self, fd: int, st: os.stat_result, drop_fd: int, name: str, journal_fd: int, target: str
    ) -> tuple[str, int] | None:
        """Across filesystems (an SMB/NFS drop folder): stream copy from the checked descriptor -> fsync
        -> verify -> rename -> unlink the source name if it still is that file. None: it changed meanwhile."""
        part = target + ".part"
        _unlink_in(journal_fd, part)
        out = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=journal_fd)
        try:
            sha, size = stream_fd(fd, out, limit=self.max_bytes)
            os.fsync(out)
        finally:
            os.close(out)
        after = os.fstat(fd)
        if (
            (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns)
            or file_sha256(Path(part), dir_fd=journal_fd) != sha
        ):
            _unlink_in(journal_fd, part)
            return None  # "not claimed yet": it settles again
        os.rename(part, target, src_dir_fd=journal_fd, dst_dir_fd=journal_fd)
        os.fsync(journal_fd)
        try:
            now = os.stat(name, dir_fd=drop_fd, follow_symlinks=False)
        except FileNotFoundError:
            return sha, size
        if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
            os.unlink(name, dir_fd=drop_fd)  # a name only: never a link's target
            os.fsync(drop_fd)
        return sha, size

    # --- after processing -----------------------------------------------------

    def finish(self, claim: Claim) -> None:
        """The scan is a verified record or sealed in quarantine: forget it."""
        self.path_of(claim).unlink(missing_ok=True)
        fsync_dir(self.dir)
        self._drop_row(claim.claim_id)

    def put_aside(self, claim: Claim, reason: str) -> None:
        """The claimed file cannot be read after all: put it aside unread (the refuser) and forget the claim."""
        with self._dir_fd() as journal_fd:
            self.refuse(journal_fd, f"{claim.claim_id}.scan", Path(claim.source_path), reason)
        self._drop_row(claim.claim_id)

    def defer(self, claim: Claim, reason: str, delay: float) -> Claim:
        return self._set(
            claim.claim_id, attempts=claim.attempts + 1, next_attempt=time.time() + delay, last_error=reason
        )

    def mark(self, claim: Claim, state: str, reason: str = "") -> Claim:
        return self._set(claim.claim_id, state=state, last_error=reason)

    # --- recovery ---------------------------------------------------------------

    def recover(self, record_exists: RecordLookup, quarantined: RecordLookup) -> list[Claim]:
        """Bring every row to 'claimed' or remove it; return the claims still to process.

        Nothing in journal/ is opened unless lstat says it is a regular file (a pipe put there is
        never opened blocking); anything else is put aside unread, like at claim time."""
        todo: list[Claim] = []
        with self._dir_fd() as journal_fd:
            for claim in self.claims():
                name = f"{claim.claim_id}.scan"
                source = Path(claim.source_path)
                try:
                    if claim.state in ("claiming", "copying"):
                        _unlink_in(journal_fd, name + ".part")
                        st = _lstat_in(journal_fd, name)
                        if st is None:
                            self._drop_row(claim.claim_id)  # never moved: it is still in the drop folder
                            continue
                        check_regular(st, self.max_bytes)
                        sha = file_sha256(Path(name), self.max_bytes, dir_fd=journal_fd)
                        if claim.state == "copying":
                            self._remove_copied_source(source, sha)
                        claim = self._set(claim.claim_id, state="claimed", sha256=sha, size=st.st_size)
                    st = _lstat_in(journal_fd, name)
                    if st is None:
                        if claim.sha256 and (record_exists(claim.sha256) or quarantined(claim.sha256)):
                            self._drop_row(claim.claim_id)  # finished just before the crash
                        else:
                            log.error(
                                "claim %s: its scan is missing from the journal and no record holds it", claim.claim_id
                            )
                            self._set(claim.claim_id, last_error="scan missing from the journal", next_attempt=1e18)
                        continue
                    check_regular(st, self.max_bytes)
                except InputRejected as exc:
                    self.refuse(journal_fd, name, source, exc.message)
                    self._drop_row(claim.claim_id)
                    continue
                todo.append(claim)
        return todo

    def _remove_copied_source(self, source: Path, sha: str) -> None:
        """After a crash mid-copy: the drop folder's original goes only if it is that same regular file."""
        try:
            with self._dir_fd(source.parent) as drop_fd:
                st = _lstat_in(drop_fd, source.name)
                if st is None or not stat.S_ISREG(st.st_mode):
                    return
                if file_sha256(Path(source.name), self.max_bytes, dir_fd=drop_fd) == sha:
                    os.unlink(source.name, dir_fd=drop_fd)
                    os.fsync(drop_fd)
        except (InputRejected, OSError):
            return  # left in the drop folder: taken again later, and ingest finds it a duplicate

    def due(self, now: float | None = None) -> list[Claim]:
        now = time.time() if now is None else now
        return [c for c in self.claims() if c.state in ("claimed", "quarantining") and c.next_attempt <= now]

    def next_due(self) -> float | None:
        row = self.catalog.db.execute(
            "SELECT MIN(next_attempt) FROM journal WHERE state IN ('claimed', 'quarantining')"
        ).fetchone()
        return None if row[0] is None else float(row[0])


def _lstat_in(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _unlink_in(dir_fd: int, name: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)
