"""Running scanarchive as a real, non-root OS account (for tests that need Unix permissions to bite).

Taken from tests/test_memory_hygiene.py: the venv's interpreter may live where the account cannot
reach it (here /root/.pyenv, under a 0700 /root). Then, instead of opening up /root, the account runs
the system Python of the same version with the venv's site-packages and this checkout on PYTHONPATH
(both world-readable).
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import scanarchive


def require_root(what: str) -> None:
    """Skip loudly outside CI when not root; in CI (which runs as root) not being root is a failure."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail(f"{what} need root in CI (to create and become real accounts)")
        pytest.skip(f"NOT ROOT: {what} (they create and switch to real non-root accounts) did not run")


def ensure_group(name: str) -> grp.struct_group:
    try:
        return grp.getgrnam(name)
    except KeyError:
        subprocess.run(["groupadd", "--system", name], check=True, timeout=60)
        return grp.getgrnam(name)


def ensure_user(name: str, *, group: str | None = None, extra_groups: tuple[str, ...] = ()) -> pwd.struct_passwd:
    """A system account without home or shell; `group` is its primary group (else its own)."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        argv = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
        argv += ["--gid", group] if group else ["--user-group"]
        subprocess.run([*argv, name], check=True, timeout=60)
    if extra_groups:
        subprocess.run(["usermod", "-a", "-G", ",".join(extra_groups), name], check=True, timeout=60)
    return pwd.getpwnam(name)


def as_user(user: pwd.struct_passwd, *argv: str, init_groups: bool = True) -> list[str]:
    """Become the account by exec (same pid, unlike runuser): its own groups from /etc/group, or none."""
    groups = "--init-groups" if init_groups else "--clear-groups"
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", groups, "--", *argv]


def python_for(account: pwd.struct_passwd) -> tuple[str, dict[str, str]]:
    """An interpreter the account can run, and the environment that finds this checkout's scanarchive."""
    checkout = str(Path(scanarchive.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([checkout, os.environ.get("PYTHONPATH", "")])}
    probe = [sys.executable, "-c", "import scanarchive.cli.main"]
    # Probed the way scanarchive starts its parser child as a non-root account too: inside a new user
    # namespace, where this machine's permissions can differ from a plain exec's.
    nested = ["unshare", "--user", "--map-current-user", "--net"] if shutil.which("unshare") else []
    reachable = all(
        subprocess.run(as_user(account, *prefix, *probe), env=env, capture_output=True, check=False).returncode == 0
        for prefix in ([], nested)
    )
    if reachable:
        return sys.executable, env
    system = shutil.which(f"python{sys.version_info.major}.{sys.version_info.minor}", path="/usr/bin:/usr/local/bin")
    assert system, "the account can reach neither the venv's interpreter nor a system Python of the same version"
    env["PYTHONPATH"] = os.pathsep.join([checkout, sysconfig.get_paths()["purelib"], os.environ.get("PYTHONPATH", "")])
    proc = subprocess.run(as_user(account, system, *probe[1:]), env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return system, env


def run_as(
    user: pwd.struct_passwd, argv: list[str], env: dict[str, str], *, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(as_user(user, *argv), env=env, capture_output=True, text=True, timeout=timeout, check=False)
