"""Memory hygiene with real processes and a real non-root account: no same-user /proc/PID/mem, no core.

The attacker runs as the same OS user as scanarchive. A running command must
refuse them its memory (PR_SET_DUMPABLE 0) and have core dumps off; a plain
Python process of that user, read the same way, shows that the read itself
works (so the test can fail).

The account runs the package as tests/kits/runas.py arranges it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kits.runas import as_user, ensure_user, python_for, require_root

USER = "sa-test-user"
READER = (
    "import sys\n"
    "pid, addr = int(sys.argv[1]), int(sys.argv[2])\n"
    "try:\n"
    "    with open(f'/proc/{pid}/mem', 'rb') as f:\n"
    "        f.seek(addr)\n"
    "        print('READ', len(f.read(4096)))\n"
    "except PermissionError:\n"
    "    print('DENIED')\n"
)


@pytest.fixture(scope="module")
def account() -> pwd.struct_passwd:
    require_root("the memory-hygiene tests")
    return ensure_user(USER)


@pytest.fixture(scope="module")
def python(account: pwd.struct_passwd) -> tuple[str, dict[str, str]]:
    return python_for(account)


@pytest.fixture
def home(account: pwd.struct_passwd) -> Iterator[Path]:
    """A folder the account owns (pytest's tmp_path is under root's 0700 folder)."""
    path = Path(tempfile.mkdtemp(prefix="sa-memtest-"))
    os.chown(path, account.pw_uid, account.pw_gid)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _first_mapping(pid: int) -> int:
    return int(Path(f"/proc/{pid}/maps").read_text().split("-", 1)[0], 16)  # read as root


def _read_as(user: pwd.struct_passwd, python: str, pid: int) -> str:
    cmd = as_user(user, python, "-c", READER, str(pid), str(_first_mapping(pid)))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout.strip()


def _core_limit(pid: int) -> str:
    line = next(x for x in Path(f"/proc/{pid}/limits").read_text().splitlines() if x.startswith("Max core file size"))
    return " ".join(line.split()[4:6])  # soft, hard


def test_a_running_command_refuses_its_memory_to_the_same_user(
    account: pwd.struct_passwd, python: tuple[str, dict[str, str]], home: Path
) -> None:
    exe, env = python
    env = {**env, "HOME": str(home), "SCANARCHIVE_TMPDIR": str(home), "SCANARCHIVE_PASSPHRASE_FILE": ""}
    archive, drop, secret = home / "archive", home / "drop", home / "pass.txt"

    def user_run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(as_user(account, *argv), env=env, capture_output=True, text=True, timeout=120, check=False)

    assert user_run("mkdir", "-m", "700", str(drop)).returncode == 0
    assert user_run("sh", "-c", f"umask 077; echo 'a long test passphrase' > {secret}").returncode == 0
    init = user_run(exe, "-m", "scanarchive", "--archive", str(archive), "init", "--passphrase-file", str(secret),
                    "--kdf-seconds", "0.01")  # fmt: skip
    assert init.returncode == 0, init.stderr[-2000:]

    watcher = subprocess.Popen(
        as_user(account, exe, "-m", "scanarchive", "--archive", str(archive), "watch", "--drop", str(drop)),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    plain = subprocess.Popen(as_user(account, exe, "-c", "import time; time.sleep(60)"), env=env)
    try:
        deadline = time.monotonic() + 60
        while _core_limit(watcher.pid) != "0 0":  # protect_process has run: main() is under way
            assert watcher.poll() is None, watcher.stderr.read().decode(errors="replace")[-2000:] if watcher.stderr else ""
            assert time.monotonic() < deadline, "the watcher never switched core dumps off"
            time.sleep(0.2)
        time.sleep(1)
        assert watcher.poll() is None, "the watcher stopped"
        assert Path(f"/proc/{watcher.pid}/status").read_text().count(f"Uid:\t{account.pw_uid}") == 1

        # The scanarchive process: memory refused, non-dumpable (the kernel then hands its /proc files to root).
        assert _read_as(account, exe, watcher.pid) == "DENIED"
        assert os.stat(f"/proc/{watcher.pid}/mem").st_uid == 0
        assert _core_limit(watcher.pid) == "0 0"

        # The control: the same read of a plain process of the same user succeeds; it is dumpable, cores allowed.
        assert _read_as(account, exe, plain.pid).startswith("READ ")
        assert os.stat(f"/proc/{plain.pid}/mem").st_uid == account.pw_uid
    finally:
        for proc in (watcher, plain):
            proc.kill()
            proc.wait(timeout=30)


def test_engine_processes_get_a_fixed_mmap_threshold_unless_the_user_set_one() -> None:
    """glibc's sliding mmap threshold let an OCR worker's freed page buffers pile up in its heap
    (bench/memory.py); every engine process is started with the threshold fixed, a user's own value kept."""
    from scanarchive import sandbox

    probe = "import os; print(os.environ.get('MALLOC_MMAP_THRESHOLD_'))"
    base = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    env = sandbox.engine_env(None, base)
    out = subprocess.run(["python3", "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(4 << 20)
    env = sandbox.engine_env(None, {**base, "MALLOC_MMAP_THRESHOLD_": "65536"})
    out = subprocess.run(["python3", "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "65536"
