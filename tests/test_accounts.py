"""Separated accounts with REAL OS accounts (docs/threat-model.md, "Accounts: who may write what").

`sa-owner` makes the archive, root runs `setup-accounts --watcher-group sa-watch`, `sa-watch` (the
watcher's account) archives a scan with `watch --once` and then tries to change what only the owner
may: every attempt must fail and every file must be byte-for-byte unchanged. The control: the same
attempts, made by the owner before the layout is applied, succeed (so the probe can fail).
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanarchive.archive import accounts, decisions
from scanarchive.archive.catalog import MIGRATIONS, Catalog
from scanarchive.fsio import folder_mode, make_dir, write_atomic
from tests.kits.helpers import cli, render_note
from tests.kits.runas import ensure_group, ensure_user, python_for, require_root, run_as
from tests.kits.watchkit import fast_watch_config

OWNER, WATCHER, GROUP = "sa-owner", "sa-watch", "sa-watch"

# Each attempt prints "name: OK" or "name: <errno name or error>"; it never stops at the first.
PROBE = r"""
import errno, os, sqlite3, sys
root = sys.argv[1]
def attempt(name, fn):
    try:
        fn()
        print(f"{name}: OK")
    except OSError as exc:
        print(f"{name}: {errno.errorcode.get(exc.errno, exc.errno)}")
    except sqlite3.Error as exc:
        print(f"{name}: sqlite {exc}")
def read_identity():
    open(f"{root}/identity.enc", "rb").read(1)
def write_config():
    open(f"{root}/config.toml", "r+b").close()
def replace_config():
    tmp = f"{root}/.probe-config"
    with open(tmp, "wb") as f:
        f.write(open(f"{root}/config.toml", "rb").read())
    try:
        os.rename(tmp, f"{root}/config.toml")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
def update_holds():
    db = sqlite3.connect(f"{root}/decisions/decisions.db", isolation_level=None)
    try:
        db.execute("UPDATE holds SET released_at = '2000-01-01' WHERE released_at IS NULL")
    finally:
        db.close()
def update_holds_via_catalog():
    sys.path.insert(0, sys.argv[2])
    from scanarchive.archive.catalog import Catalog
    from pathlib import Path
    c = Catalog(Path(root) / "catalog.db")
    try:
        with c.transaction() as db:
            db.execute("DELETE FROM holds")
    finally:
        c.close()
def plant_journal():
    open(f"{root}/decisions/decisions.db-journal", "xb").close()
    os.unlink(f"{root}/decisions/decisions.db-journal")
def delete_certificate():
    os.unlink(f"{root}/certificates/{sys.argv[3]}")
def write_index():
    open(f"{root}/index.db", "r+b").close()
for name, fn in list(globals().items()):
    if name in ("read_identity", "write_config", "replace_config", "update_holds", "update_holds_via_catalog",
                "plant_journal", "delete_certificate", "write_index"):
        attempt(name, fn)
"""
ATTEMPTS = (
    "read_identity",
    "write_config",
    "replace_config",
    "update_holds",
    "update_holds_via_catalog",
    "plant_journal",
    "delete_certificate",
    "write_index",
)
PROTECTED = ("config.toml", "identity.enc", "decisions/decisions.db", "index.db")


def _digests(root: Path, certificate: str) -> dict[str, str]:
    names = (*PROTECTED, f"certificates/{certificate}")
    return {n: hashlib.sha256((root / n).read_bytes()).hexdigest() for n in names}


def _outcomes(stdout: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in stdout.splitlines() if ": " in line)


@pytest.fixture(scope="module")
def people() -> tuple[pwd.struct_passwd, pwd.struct_passwd]:
    require_root("the separated-accounts tests")
    ensure_group(GROUP)
    watcher = ensure_user(WATCHER, group=GROUP)
    owner = ensure_user(OWNER, extra_groups=(GROUP,))
    return owner, watcher


@pytest.fixture
def place() -> Iterator[Path]:
    """A folder both accounts can traverse (pytest's tmp_path is under root's 0700 folder)."""
    path = Path(tempfile.mkdtemp(prefix="sa-accounts-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        audit_log = path / "archive" / "audit.log"
        if audit_log.exists() and accounts.append_only(audit_log):
            subprocess.run(["chattr", "-a", str(audit_log)], check=False)
        shutil.rmtree(path, ignore_errors=True)


def test_the_watchers_account_archives_a_scan_but_cannot_change_decisions_config_or_the_identity(
    people: tuple[pwd.struct_passwd, pwd.struct_passwd], place: Path
) -> None:
    owner, watcher = people
    exe, env = python_for(owner)
    env = {**env, "SCANARCHIVE_PASSPHRASE_FILE": "", "HOME": str(place)}
    checkout = env["PYTHONPATH"].split(os.pathsep)[0]
    archive, drop, secret = place / "archive", place / "drop", place / "pass.txt"
    secret.write_text("a long test passphrase for the accounts\n")
    os.chown(secret, owner.pw_uid, owner.pw_gid)
    secret.chmod(0o600)
    owner_tmp = place / "owner-tmp"
    owner_tmp.mkdir(mode=0o700)
    os.chown(owner_tmp, owner.pw_uid, owner.pw_gid)

    def as_owner(*argv: str) -> str:
        run = run_as(owner, [exe, "-m", "scanarchive", "--archive", str(archive), *argv],
                     {**env, "SCANARCHIVE_TMPDIR": str(owner_tmp)})  # fmt: skip
        assert run.returncode == 0, run.stderr[-3000:]
        return run.stdout

    archive.mkdir(mode=0o700)
    os.chown(archive, owner.pw_uid, owner.pw_gid)
    as_owner("init", "--passphrase-file", str(secret), "--kdf-seconds", "0.01")
    as_owner(
        "hold",
        "place",
        "subpoena-1",
        "--client",
        "C-0042",
        "--reason",
        "subpoena received",
        "--passphrase-file",
        str(secret),
    )
    drop.mkdir(mode=0o770)
    os.chown(drop, watcher.pw_uid, watcher.pw_gid)
    fast_watch_config(archive, drop)  # as root: the file keeps its owner and mode
    as_owner("search", "anything", "--passphrase-file", str(secret))  # makes index.db (owner-only)
    certificate = "00000000-0000-4000-8000-000000000000.txt"
    assert run_as(owner, ["sh", "-c", f"mkdir -m 700 {archive}/certificates && echo cert > "
                          f"{archive}/certificates/{certificate}"], env).returncode == 0  # fmt: skip

    # Control: single-account mode. The owner can do all of it (so each attempt can succeed),
    # and the report says "single".
    assert json.loads(as_owner("status", "--json"))["accounts"]["mode"] == "single"
    control = run_as(owner, [exe, "-c", PROBE, str(archive), checkout, certificate], env)
    found = _outcomes(control.stdout)
    assert {a: found.get(a) for a in ATTEMPTS} == dict.fromkeys(ATTEMPTS, "OK"), control.stdout + control.stderr
    as_owner(
        "hold",
        "place",
        "subpoena-2",
        "--client",
        "C-0042",
        "--reason",
        "subpoena received",
        "--passphrase-file",
        str(secret),
    )  # probe released it
    assert run_as(owner, ["sh", "-c", f"echo cert > {archive}/certificates/{certificate}"], env).returncode == 0

    # Apply the layout as root.
    setup = cli_root(["--archive", str(archive), "setup-accounts", "--watcher-group", GROUP])
    assert "chmod 3770 ." in setup and "create journal/" in setup, setup
    assert accounts.mode_of(archive) == "separated"
    before = _digests(archive, certificate)

    # The watcher archives a scan ...
    image, _ = render_note(seed=5)
    scan = drop / "note-5.png"
    image.save(scan, dpi=(300, 300))
    os.chown(scan, watcher.pw_uid, watcher.pw_gid)
    watch_exe, watch_env = python_for(watcher)
    watcher_tmp = place / "watch-tmp"
    watcher_tmp.mkdir(mode=0o700)
    os.chown(watcher_tmp, watcher.pw_uid, watcher.pw_gid)
    watch_env = {**watch_env, "SCANARCHIVE_PASSPHRASE_FILE": "", "HOME": str(watcher_tmp),
                 "SCANARCHIVE_TMPDIR": str(watcher_tmp)}  # fmt: skip
    # The watcher's account cannot change what is the owner's ...
    probe = run_as(watcher, [watch_exe, "-c", PROBE, str(archive), checkout, certificate], watch_env)
    found = _outcomes(probe.stdout)
    assert found["read_identity"] == "EACCES"
    assert found["write_config"] == "EACCES"
    assert found["replace_config"] in ("EPERM", "EACCES"), "the sticky bit keeps config.toml the owner's"
    assert found["update_holds"].startswith("sqlite attempt to write a readonly database")
    assert found["update_holds_via_catalog"].startswith("sqlite attempt to write a readonly database")
    assert found["plant_journal"] == "EACCES"
    assert found["delete_certificate"] == "EACCES"
    assert found["write_index"] == "EACCES"
    assert set(found) == set(ATTEMPTS), probe.stdout + probe.stderr
    assert _digests(archive, certificate) == before, "every owner file is byte-for-byte unchanged"

    # ... and archives a scan.
    run = run_as(watcher, [watch_exe, "-m", "scanarchive", "--archive", str(archive), "watch", "--once"], watch_env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "single-account mode" not in run.stderr
    assert not scan.exists(), run.stderr[-3000:]
    assert json.loads(as_owner("status", "--json"))["records"] == 1, run.stderr[-3000:] + str(watch_env.get("PATH"))
    assert any(p.stat().st_uid == watcher.pw_uid for p in (archive / "objects").rglob("*") if p.is_file())

    # The owner still works, and status says "separated".
    as_owner("hold", "release", "subpoena-2", "--passphrase-file", str(secret))
    doc = json.loads(as_owner("status", "--json"))["accounts"]
    assert doc["mode"] == "separated"
    assert all("not append-only" not in p for p in doc["problems"]) or not accounts.append_only(
        archive / "audit.log"
    ), doc


def cli_root(argv: list[str]) -> str:
    """The CLI as root (this test's own account)."""
    run = subprocess.run([sys.executable, "-m", "scanarchive", *argv], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


# --- without root: the pieces ---------------------------------------------------------------------


def test_single_account_archives_say_so_and_stay_private(archive_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    found = accounts.report(archive_dir)
    assert (found.mode, found.problems) == ("single", [])
    assert accounts.SINGLE_WARNING in accounts.watcher_warnings(archive_dir)
    run = cli(capsys, "--archive", archive_dir, "status")
    assert "Accounts:   single" in run.out
    assert (archive_dir / "decisions").stat().st_mode & 0o777 == 0o700
    assert (archive_dir / "decisions" / "decisions.db").stat().st_mode & 0o777 == 0o600


def test_modes_follow_a_setgid_folder_and_nothing_else(tmp_path: Path) -> None:
    plain, shared = tmp_path / "plain", tmp_path / "shared"
    plain.mkdir(mode=0o700)
    shared.mkdir()
    shared.chmod(0o3770)
    assert folder_mode(plain, 0o600) == 0o600
    assert folder_mode(shared, 0o600) == 0o640, "group reads, never writes, unless asked"
    assert folder_mode(shared, 0o600, writable_by_group=True) == 0o660
    assert folder_mode(shared, 0o400) == 0o440
    old = os.umask(0o077)
    try:
        write_atomic(shared / "config.toml", b"x")
        write_atomic(shared / "identity.enc", b"x", private=True)
        make_dir(shared / "sub")
        make_dir(shared / "owner-only", writable_by_group=False)
    finally:
        os.umask(old)
    assert (shared / "config.toml").stat().st_mode & 0o777 == 0o640, "the umask does not take the group's bits"
    assert (shared / "identity.enc").stat().st_mode & 0o777 == 0o600
    assert (shared / "sub").stat().st_mode & 0o7777 == 0o3770
    assert (shared / "owner-only").stat().st_mode & 0o7777 == 0o2750


def test_decisions_move_out_of_an_older_catalog_with_their_rows(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "catalog.db", isolation_level=None)
    for number, script in enumerate(MIGRATIONS, start=1):
        db.executescript(script)
        db.execute(f"PRAGMA user_version = {number}")
    db.execute("INSERT INTO holds(name, client_code, reason, placed_by, placed_at) VALUES ('h1','C-1','r','me','t')")
    db.execute("INSERT INTO clients(code, date_of_birth, created_at, updated_at) VALUES ('C-1','1980-01-01','t','t')")
    db.close()
    catalog = Catalog(tmp_path / "catalog.db")
    try:
        main = {r[0] for r in catalog.db.execute("SELECT name FROM main.sqlite_master WHERE type = 'table'")}
        assert not main & set(decisions.TABLES), "no decision table is left in catalog.db"
        assert catalog.db.execute("SELECT name FROM holds").fetchall()[0][0] == "h1"
        assert catalog.db.execute("SELECT date_of_birth FROM decisions.clients").fetchone()[0] == "1980-01-01"
    finally:
        catalog.close()
    assert decisions.path_of(tmp_path).is_file()
