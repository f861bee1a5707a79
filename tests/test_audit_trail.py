"""Every library entry point that changes state writes its own audit entry (not the CLI handler).

Each case calls the LIBRARY function directly on a real archive, with no command-line handler
in between, and checks that exactly the expected new entries were appended: their event and
every field, nothing more. A case fails if the entry is missing (as it was while cli/ wrote
the audit trail), has a field more or less, or is written twice.

Covered: retention (clients, presets, holds, approvals, purge), filing, ingest, verify, passwd,
search, show, backup, export, and the quarantine's show and drop (retry: tests/test_sealed.py;
init: tests/test_audit.py; the watcher: tests/test_watch.py). To add one, append an `EntryPoint`: `call` runs the library function, `expect`
lists the entries it must append (event and fields, in order), `setup` prepares the archive
beforehand (its own entries are not counted).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from scanarchive import audit, export, reading
from scanarchive.archive import backup, check, filing, quarantine
from scanarchive.archive.layout import Archive
from scanarchive.crypto.keys import Identity
from scanarchive.errors import UsageError
from scanarchive.ingest import batch
from scanarchive.intake import quarantine as intake_quarantine
from scanarchive.retention import approvals, clients, holds, purge, review
from tests.conftest import PASSPHRASE
from tests.kits.helpers import cli, decide, render_note

CLIENT = "C-0001"
SESSION = "2020-01-02"
FAR = date(2040, 1, 1)  # the 2020 session of a client who ended therapy in 2020 is due by then
ENVELOPE = frozenset({"seq", "at", "actor", "prev", "hash"})  # what every entry has besides its fields


@dataclass(frozen=True)
class World:
    """An archive with one note for CLIENT (ended therapy on SESSION) and two presets in force."""

    root: Path
    record_id: str

    def open(self) -> Archive:
        return Archive(self.root)


Expected = list[dict[str, Any]]


@dataclass(frozen=True)
class EntryPoint:
    name: str
    call: Callable[[World], object]
    expect: Callable[[World], Expected]
    setup: Callable[[World], object] = lambda world: None


# --- the calls ----------------------------------------------------------------


def _me(a: Archive) -> Identity:
    """Decisions are signed: they need the unlocked identity."""
    return a.unlock(PASSPHRASE)


def _client_save(w: World) -> None:
    with w.open() as a:
        clients.save(a, "C-0002", {"date_of_birth": "1990-01-01", "termination": ""}, create=True, identity=_me(a))


def _use_presets(w: World) -> None:
    with w.open() as a:
        review.use_presets(a, ["us_tx_lpc"], allow_unconfirmed=False, identity=_me(a))


def _hold_client(w: World) -> None:
    with w.open() as a:
        holds.place(a, "subpoena-1", "subpoena received", client=CLIENT, record=None, identity=_me(a))


def _hold_record(w: World) -> None:
    with w.open() as a:
        holds.place(a, "court:2040.1", "court order", client=None, record=w.record_id[:8], identity=_me(a))


def _hold_release(w: World) -> None:
    with w.open() as a:
        holds.release(a, "subpoena-1", identity=_me(a))


def _approve_named(w: World) -> None:
    with w.open() as a:
        approvals.approve(a, [w.record_id[:8]], by="Dr Reviewer", today=FAR, identity=_me(a))


def _approve_all_due(w: World) -> None:
    with w.open() as a:
        approvals.approve(a, None, by="Dr Reviewer", today=FAR, identity=_me(a))


def _purge_run(w: World) -> None:
    with w.open() as a:
        purge.run(a, FAR)


def _purge_plan_execute(w: World) -> None:
    with w.open() as a, purge.one_at_a_time(a):
        purge.execute(a, purge.plan(a, FAR))


def _purge_dry_run(w: World) -> None:
    with w.open() as a:
        purge.execute(a, purge.plan(a, FAR), dry_run=True)


def _file_record(w: World) -> None:
    with w.open() as a:
        filing.file_record(a, w.record_id, session_date="2020-01-03", record_class="psychotherapy")


def _ingest_batch(w: World) -> None:
    image, _ = render_note(seed=11)
    scan = w.root.parent / "second-note.png"
    image.save(scan, dpi=(300, 300))
    ((_, result),) = batch.ingest_files(w.root, [scan], 1)
    assert not isinstance(result, Exception), result


def _newest(w: World) -> str:
    with w.open() as a:
        return a.catalog.records()[-1].id


def _verify(w: World) -> None:
    with w.open() as a:
        check.check_archive(a, None)


def _verify_read_data(w: World) -> None:
    with w.open() as a:
        check.check_archive(a, _me(a))


def _passwd(w: World) -> None:
    with w.open() as a:
        a.change_passphrase(_me(a), PASSPHRASE + " again", kdf_seconds=0.01)


def _search(w: World) -> None:
    with w.open() as a:
        reading.search(a, _me(a), "zzzzqqq", client=CLIENT)


def _show(w: World) -> None:
    with w.open() as a:
        reading.show(a, _me(a), a.catalog.record(w.record_id))


def _backup(w: World) -> None:
    with w.open() as a:
        backup.backup(a, w.root.parent / "the-backup")


def _export(w: World) -> None:
    with w.open() as a:
        export.export_client(a, _me(a), CLIENT, w.root.parent / "the-export")


def _quarantined(w: World) -> None:
    with w.open() as a:
        quarantine.seal_scan(a, b"not a scan at all" * 10, "junk.png", "0" * 64, "not an image")


def _quarantined_to_drop(w: World) -> None:
    _quarantined(w)
    _dropped.append(_only_entry(w))


def _only_entry(w: World) -> str:
    with w.open() as a:
        (entry,) = quarantine.entries(a)
        return entry.id


def _failed_drop(w: World) -> None:
    with w.open() as a:
        intake_quarantine.drop(a, _me(a), quarantine.get(a, _only_entry(w)))


def _failed_show(w: World) -> None:
    with w.open() as a:
        quarantine.show(a, _me(a), quarantine.get(a, _only_entry(w)))


# --- what they must write -----------------------------------------------------


_dropped: list[str] = []  # the id of the entry a drop case removes (gone from the catalog afterwards)


def _key_id(w: World) -> str:
    with w.open() as a:
        return a.config.recipient.key_id


def _destroyed(w: World) -> Expected:
    return [
        {"event": "purge", "record": w.record_id, "preset": "us_tx_lpc", "client": CLIENT},
        {"event": "purge", "records": [w.record_id], "count": 1, "dry_run": False, "automatic": False},
    ]


ENTRY_POINTS: list[EntryPoint] = [
    EntryPoint(
        "retention.clients.save",
        _client_save,
        lambda w: [{"event": "client", "client": "C-0002", "fields": ["date_of_birth", "termination"]}],
    ),
    EntryPoint(
        "retention.review.use_presets",
        _use_presets,
        lambda w: [{"event": "retention", "presets": ["us_tx_lpc"]}],
    ),
    EntryPoint(
        "retention.holds.place (client)",
        _hold_client,
        lambda w: [{"event": "hold_place", "hold": "subpoena-1", "client": CLIENT}],
    ),
    EntryPoint(
        "retention.holds.place (record)",
        _hold_record,
        lambda w: [{"event": "hold_place", "hold": "court:2040.1", "record": w.record_id}],
    ),
    EntryPoint(
        "retention.holds.release",
        _hold_release,
        lambda w: [{"event": "hold_release", "hold": "subpoena-1"}],
        setup=_hold_client,
    ),
    EntryPoint(
        "retention.approvals.approve (named)",
        _approve_named,
        lambda w: [{"event": "approve", "records": [w.record_id], "count": 1}],
    ),
    EntryPoint(
        "retention.approvals.approve (all due)",
        _approve_all_due,
        lambda w: [{"event": "approve", "records": [w.record_id], "count": 1}],
    ),
    EntryPoint("retention.purge.run", _purge_run, _destroyed, setup=_approve_named),
    EntryPoint("retention.purge.plan + execute", _purge_plan_execute, _destroyed, setup=_approve_named),
    EntryPoint(
        "retention.purge.execute (dry run)",
        _purge_dry_run,
        lambda w: [{"event": "purge", "records": [], "count": 0, "dry_run": True, "automatic": False}],
        setup=_approve_named,
    ),
    EntryPoint(
        "ingest.batch.ingest_files",
        _ingest_batch,
        lambda w: [
            {
                "event": "ingest",
                "records": [_newest(w)],
                "clients": [],
                "pages": 1,
                "duplicate": False,
                "source_removed": True,
            }
        ],
    ),
    EntryPoint(
        "archive.check.check_archive", _verify, lambda w: [{"event": "verify", "checked": 1, "damaged": [], "ok": True}]
    ),
    EntryPoint(
        "archive.check.check_archive (read data)",
        _verify_read_data,
        lambda w: [{"event": "verify", "checked": 1, "damaged": [], "ok": True}],
    ),
    EntryPoint("Archive.change_passphrase", _passwd, lambda w: [{"event": "passwd", "key_id": _key_id(w)}]),
    EntryPoint("reading.search", _search, lambda w: [{"event": "search", "results": 0, "client": CLIENT}]),
    EntryPoint("reading.show", _show, lambda w: [{"event": "show", "record": w.record_id, "client": CLIENT}]),
    EntryPoint("archive.backup.backup", _backup, lambda w: [{"event": "backup", "count": 1, "checked": 1}]),
    EntryPoint(
        "export.export_client",
        _export,
        lambda w: [
            {
                "event": "export",
                "client": CLIENT,
                "records": [w.record_id],
                "count": 1,
                "excluded": 0,
                "include_psychotherapy": False,
                "encrypted": False,
            }
        ],
    ),
    EntryPoint(
        "archive.quarantine.show",
        _failed_show,
        lambda w: [{"event": "failed", "item": _only_entry(w), "command": "show"}],
        setup=_quarantined,
    ),
    EntryPoint(
        "intake.quarantine.drop",
        _failed_drop,
        lambda w: [{"event": "failed", "item": _dropped.pop(), "command": "drop"}],
        setup=_quarantined_to_drop,
    ),
    EntryPoint(
        "archive.filing.file_record",
        _file_record,
        lambda w: [
            {"event": "file", "record": w.record_id, "fields": ["session_date", "record_class"], "client": CLIENT}
        ],
    ),
]


# --- the test -----------------------------------------------------------------


def _entries(root: Path) -> list[dict[str, Any]]:
    return audit.read_entries(audit.log_path(root))


def _fields(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k not in ENVELOPE}


@pytest.fixture
def world(archive_dir: Path, passphrase_file: Path, small_scan: Path, capsys: pytest.CaptureFixture[str]) -> World:
    run = cli(capsys, "--archive", archive_dir, "ingest", small_scan, "--client", CLIENT, "--date", SESSION)
    assert run.code == 0, run.err
    run = decide(
        capsys, archive_dir, passphrase_file, "client", "add", CLIENT, "--born", "1980-05-05", "--terminated", SESSION
    )
    assert run.code == 0, run.err
    run = decide(capsys, archive_dir, passphrase_file, "retention", "use", "us_tx_lpc", "apa_2007")
    assert run.code == 0, run.err
    with Archive(archive_dir) as a:
        (record,) = a.catalog.records()
    return World(archive_dir, record.id)


@pytest.mark.parametrize("entry_point", ENTRY_POINTS, ids=[e.name for e in ENTRY_POINTS])
def test_state_changing_entry_point_writes_its_audit_entry(world: World, entry_point: EntryPoint) -> None:
    entry_point.setup(world)
    before = _entries(world.root)
    entry_point.call(world)
    after = _entries(world.root)
    assert after[: len(before)] == before, "earlier entries are untouched"
    assert [_fields(e) for e in after[len(before) :]] == entry_point.expect(world)
    assert audit.verify(audit.log_path(world.root)).ok, "the chain still verifies"


def test_a_purge_plan_made_outside_the_lock_is_refused_and_nothing_is_written(world: World) -> None:
    _approve_named(world)
    before = _entries(world.root)
    with world.open() as a:
        early = purge.plan(a, FAR)  # made before the lock: another purge may destroy these meanwhile
        with pytest.raises(RuntimeError):
            purge.execute(a, early)
        with purge.one_at_a_time(a), pytest.raises(RuntimeError):
            purge.execute(a, early)
        with purge.one_at_a_time(a):
            held = purge.plan(a, FAR)
        with pytest.raises(RuntimeError):
            purge.execute(a, held)  # its lock was released
        assert [r.id for r in a.catalog.records()] == [world.record_id]
    assert _entries(world.root) == before


def test_a_refused_change_writes_no_audit_entry(world: World) -> None:
    before = _entries(world.root)
    with world.open() as a:
        with pytest.raises(UsageError, match="is not due"):
            approvals.approve(a, [world.record_id], by="Dr Reviewer", today=date(2021, 1, 1), identity=_me(a))
        with pytest.raises(UsageError, match="a hold name is 1-64"):
            holds.place(a, "a name with spaces", "subpoena received", client=CLIENT, record=None, identity=_me(a))
        with pytest.raises(UsageError, match="nothing to change"):
            filing.file_record(a, world.record_id)
    assert _entries(world.root) == before
