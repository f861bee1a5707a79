"""A real install on one command (issue 14, item 2): `scanarchive setup-host` (what `sudo ./dev.sh install`
runs after putting the program in its own venv) with REAL accounts of unique test names, a real archive,
the separated layout and the host files installed under a temporary --root; the generated units checked
with `systemd-analyze verify` where it is installed; the uninstall that keeps the archive; and dev.sh
waiting for the package manager's lock."""

from __future__ import annotations

import fcntl
import grp
import hashlib
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanarchive.archive import accounts
from scanarchive.cli import host
from scanarchive.cli.host_cmds import this_program
from tests.kits.helpers import cli
from tests.kits.runas import require_root

CHECKOUT = Path(__file__).resolve().parents[1]


def directives(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_the_units_in_config_systemd_are_the_generated_ones_with_the_default_paths() -> None:
    rendered = host.units(host.Host(program=Path("/usr/local/bin/scanarchive")))
    assert sorted(rendered) == sorted(p.name for p in (CHECKOUT / "config/systemd").iterdir())
    for name, text in rendered.items():
        assert directives((CHECKOUT / "config/systemd" / name).read_text()) == directives(text), name
    assert "OnFailure=scanarchive-failed@%n.service" in rendered[host.WATCH]
    assert "OnFailure=scanarchive-failed@%n.service" in rendered[host.PURGE]


def test_the_generated_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    h = host.Host(program=this_program(), archive=Path("/var/lib/sa-test/archive"), drop=Path("/srv/sa-test"))
    names = []
    for name, text in host.units(h).items():
        # the template is verified as the instance the OnFailure= of the purge unit starts
        name = name.replace("@.", f"@{host.PURGE}.")
        (tmp_path / name).write_text(text)
        names.append(str(tmp_path / name))
    proc = subprocess.run(
        [analyze, "verify", "--man=no", *names], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "Unknown" not in proc.stderr and "ignoring" not in proc.stderr, proc.stderr
    # the control: a unit that names a program that is not there fails
    broken = tmp_path / "scanarchive-broken.service"
    broken.write_text(host.units(host.Host(program=Path("/nonexistent/scanarchive")))[host.PURGE])
    assert (
        subprocess.run([analyze, "verify", "--man=no", str(broken)], capture_output=True, check=False).returncode != 0
    )


@pytest.fixture
def names() -> Iterator[tuple[str, str]]:
    """Unique account names for one test; both accounts and the group are removed afterwards."""
    require_root("the install tests")
    tag = uuid.uuid4().hex[:6]
    owner, watcher = f"sa-own-{tag}", f"sa-wat-{tag}"
    try:
        yield owner, watcher
    finally:
        for user in (owner, watcher):
            subprocess.run(["userdel", user], capture_output=True, check=False)
        for group in (owner, watcher):
            subprocess.run(["groupdel", group], capture_output=True, check=False)


@pytest.fixture
def base() -> Iterator[Path]:
    """A folder the test accounts can traverse (pytest's tmp_path is under root's 0700 folder)."""
    path = Path(tempfile.mkdtemp(prefix="sa-install-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        audit_log = path / "home" / "archive" / "audit.log"
        if audit_log.exists() and accounts.append_only(audit_log):
            subprocess.run(["chattr", "-a", str(audit_log)], check=False)
        shutil.rmtree(path, ignore_errors=True)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_setup_host_installs_for_real_is_idempotent_and_its_uninstall_keeps_the_archive(
    names: tuple[str, str], base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    owner, watcher = names
    archive, drop, root = base / "home" / "archive", base / "scans", base / "root"
    secret = tmp_path / "pass.txt"
    secret.write_text("a long test passphrase for the installer\n")
    secret.chmod(0o600)
    argv = ["--archive", str(archive), "setup-host", "--drop", str(drop), "--owner", owner, "--watcher", watcher,
            "--root", str(root), "--no-start", "--passphrase-file", str(secret), "--kdf-seconds", "0.02"]  # fmt: skip

    dry = cli(capsys, *argv, "--dry-run")
    assert dry.code == 0, dry.err
    assert f"would create the account {owner}" in dry.out
    assert "Dry run: nothing was changed." in dry.out
    with pytest.raises(KeyError):
        pwd.getpwnam(owner)
    assert not archive.exists() and not root.exists() and not drop.exists()

    run = cli(capsys, *argv)
    assert run.code == 0, run.err
    for said in (f"create the account {owner}", f"create the account {watcher}", f"create the archive {archive}",
                 "give the archive the separated layout", "install bash completion", "Installed."):  # fmt: skip
        assert said in run.out, run.out
    own, wat = pwd.getpwnam(owner), pwd.getpwnam(watcher)
    group = grp.getgrnam(watcher)
    assert wat.pw_gid == group.gr_gid and owner in group.gr_mem
    assert own.pw_shell == wat.pw_shell == host.NOLOGIN
    # the archive: made by its owner, in the separated layout (only append-only may be unavailable here)
    assert (archive / "config.toml").stat().st_uid == own.pw_uid
    assert accounts.mode_of(archive) == "separated"
    assert [p for p in accounts.check(archive) if p.path != accounts.AUDIT] == []
    assert stat.S_IMODE((archive / "identity.enc").stat().st_mode) == 0o600
    st = drop.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (wat.pw_uid, group.gr_gid, 0o2770)
    # the host files, with this host's paths
    units = root / "etc/systemd/system"
    watch_unit = (units / host.WATCH).read_text()
    assert f"ExecStart={this_program()} --archive {archive} watch --drop {drop}" in watch_unit
    assert f"User={watcher}" in watch_unit
    assert f"User={owner}" in (units / host.PURGE).read_text()
    assert (units / host.TIMER).is_file() and (units / host.FAILED).is_file()
    link = root / "usr/local/bin/scanarchive"
    assert link.is_symlink() and link.resolve() == this_program().resolve()
    assert "setup-host" in (root / "usr/local/share/bash-completion/completions/scanarchive").read_text()
    assert "setup-host" in (root / "usr/local/share/zsh/site-functions/_scanarchive").read_text()
    assert (root / "usr/local/share/man/man1/scanarchive.1").read_text().startswith(".TH")

    kept = {name: _digest(archive / name) for name in ("config.toml", "identity.enc", "catalog.db")}
    again = cli(capsys, *argv)
    assert again.code == 0, again.err
    assert "create the account" not in again.out and "create the archive" not in again.out

    gone = cli(capsys, *argv, "--uninstall")
    assert gone.code == 0, gone.err
    assert "The archive and its notes were not touched." in gone.out
    assert not any(units.iterdir()) and not link.is_symlink()
    assert not (root / "usr/local/share/man/man1/scanarchive.1").exists()
    assert {name: _digest(archive / name) for name in kept} == kept
    assert drop.is_dir()
    pwd.getpwnam(owner)  # the accounts stay: they own the archive


def test_setup_host_refuses_folders_the_hardened_units_cannot_see(capsys: pytest.CaptureFixture[str]) -> None:
    run = cli(capsys, "--archive", "/home/someone/archive", "setup-host", "--dry-run")
    assert run.code != 0
    assert "may not be under /home" in run.err


def test_dev_sh_waits_for_the_package_managers_lock_and_says_so(tmp_path: Path) -> None:
    lock = tmp_path / "lock-frontend"
    lock.touch()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time\nfd = open(sys.argv[1], 'a')\nfcntl.lockf(fd, fcntl.LOCK_EX)\n"
         "print('held', flush=True)\ntime.sleep(3)", str(lock)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    started = time.monotonic()
    proc = subprocess.run([str(CHECKOUT / "dev.sh"), "wait-for-apt"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "SCANARCHIVE_APT_LOCKS": f"{lock} {tmp_path / 'absent'}"}, check=False)  # fmt: skip
    waited = time.monotonic() - started
    holder.wait(timeout=10)
    assert proc.returncode == 0, proc.stderr
    assert "Waiting for it to finish" in proc.stdout and "free again" in proc.stdout
    assert waited >= 1.5
    with open(lock, "a") as fd:  # the lock is free: no wait, no message
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.lockf(fd, fcntl.LOCK_UN)
    free = subprocess.run([str(CHECKOUT / "dev.sh"), "wait-for-apt"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "SCANARCHIVE_APT_LOCKS": str(lock)}, check=False)  # fmt: skip
    assert free.returncode == 0 and free.stdout == ""


def test_setup_host_says_when_the_service_accounts_cannot_reach_the_program(base: Path) -> None:
    closed = base / "closed"
    (closed / "bin").mkdir(parents=True)
    program = closed / "bin" / "scanarchive"
    program.write_text("#!/usr/bin/env python3\n")
    closed.chmod(0o700)
    assert host.unreachable(program) == closed
    closed.chmod(0o755)
    assert host.unreachable(program) is None
    program.write_text(f"#!{closed}/lib/python\n")  # the interpreter its #! names is closed off
    (closed / "lib").mkdir(mode=0o700)
    assert host.unreachable(program) == closed / "lib"


@pytest.mark.slow
def test_dev_sh_install_puts_the_program_in_its_own_venv_and_uninstall_keeps_the_archive(
    names: tuple[str, str], base: Path, tmp_path: Path
) -> None:
    owner, watcher = names
    venv, archive, root = base / "opt" / "venv", base / "home" / "archive", base / "root"
    secret = tmp_path / "pass.txt"
    secret.write_text("a long test passphrase for dev.sh install\n")
    secret.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # pip reaches the package index
    env["SCANARCHIVE_HOST_VENV"] = str(venv)
    flags = ["--archive", str(archive), "--drop", str(base / "scans"), "--owner", owner, "--watcher", watcher,
             "--root", str(root)]  # fmt: skip
    proc = subprocess.run([str(CHECKOUT / "dev.sh"), "install", *flags, "--no-start", "--passphrase-file", str(secret),
                           "--kdf-seconds", "0.02"], capture_output=True, text=True, env=env, timeout=900, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"installing scanarchive into {venv}" in proc.stdout and "Installed." in proc.stdout
    where = subprocess.run([str(venv / "bin/python"), "-c", "import scanarchive; print(scanarchive.__file__)"],
                           capture_output=True, text=True, env=env, cwd=base, check=True).stdout  # fmt: skip
    assert Path(where.strip()).is_relative_to(venv)  # a copy, not the checkout (not editable)
    program = venv / "bin" / "scanarchive"
    assert f"ExecStart={program} --archive {archive} purge" in (root / "etc/systemd/system" / host.PURGE).read_text()
    assert (root / "usr/local/bin/scanarchive").resolve() == program.resolve()
    identity = _digest(archive / "identity.enc")

    gone = subprocess.run([str(CHECKOUT / "dev.sh"), "uninstall", *flags], capture_output=True, text=True, env=env,
                          timeout=300, check=False)  # fmt: skip
    assert gone.returncode == 0, gone.stdout[-3000:] + gone.stderr[-3000:]
    assert not venv.exists() and not (root / "usr/local/bin/scanarchive").is_symlink()
    assert _digest(archive / "identity.enc") == identity
