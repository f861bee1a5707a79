"""Drop-folder benchmark: drain a burst, the watcher's peak RSS, and its CPU use while idle.

    .venv/bin/python bench/watch.py [--scans 300] [--idle 60]

Baseline, measured in the same run on the same scans: one `scanarchive ingest`
command given all the files at once (the pipeline without the watcher's
detect/settle/claim/journal work). The ratio shows what the watcher's safety
costs. Idle CPU is measured over --idle seconds with an empty folder; it should
be about zero (no busy polling).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.kits.watchkit import catalog_rows, small_scan_bytes  # noqa: E402


def new_archive(root: Path, drop: Path) -> Path:
    archive = root / "archive"
    secret = root / "pw"
    secret.write_text("benchmark passphrase")
    secret.chmod(0o600)  # a passphrase file others can read is refused
    cmd = [
        sys.executable,
        "-m",
        "scanarchive",
        "--archive",
        str(archive),
        "init",
        "--passphrase-file",
        str(secret),
        "--kdf-seconds",
        "0.05",
    ]
    subprocess.run(cmd, check=True, capture_output=True)
    config = archive / "config.toml"
    text = (
        config.read_text()
        .replace('folder = ""', f'folder = "{drop}"')
        .replace("settle_seconds = 5", "settle_seconds = 1")
    )
    config.write_text(text)
    return archive


def records(archive: Path) -> int:
    return len(catalog_rows(archive, "SELECT id FROM records"))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scans", type=int, default=300)
    parser.add_argument("--idle", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sa-bench-watch-") as tmp:
        root = Path(tmp)
        scans = [small_scan_bytes(5000 + i)[0] for i in range(args.scans)]

        # baseline: one ingest command with every file
        base_drop = root / "base-drop"
        base_drop.mkdir()
        (root / "base").mkdir()
        base_archive = new_archive(root / "base", base_drop)
        files = []
        for n, data in enumerate(scans):
            (base_drop / f"s{n:04d}.png").write_bytes(data)
            files.append(str(base_drop / f"s{n:04d}.png"))
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "scanarchive", "--archive", str(base_archive), "ingest", *files],
            check=True,
            capture_output=True,
        )
        baseline = time.perf_counter() - start

        # the watcher
        drop = root / "drop"
        drop.mkdir()
        (root / "w").mkdir()
        archive = new_archive(root / "w", drop)
        proc = subprocess.Popen(
            [sys.executable, "-m", "scanarchive", "--archive", str(archive), "watch"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(2)
        start = time.perf_counter()
        for n, data in enumerate(scans):
            (drop / f"s{n:04d}.png").write_bytes(data)
        while records(archive) < args.scans:
            time.sleep(0.2)
        drained = time.perf_counter() - start
        time.sleep(3)  # let the last claim finish
        idle_start = cpu_seconds(proc.pid)
        time.sleep(args.idle)
        idle_cpu = cpu_seconds(proc.pid) - idle_start
        proc.send_signal(signal.SIGTERM)
        _, _, usage = os.wait4(proc.pid, 0)

    n = args.scans
    print(f"scans: {n} small single-page PNGs (5.5 x 1.6 in, 300 dpi), dropped at once; settle 1 s")
    print(f"{'run':<34}{'seconds':>9}{'scans/s':>9}{'vs baseline':>13}")
    print(f"{'baseline: one ingest command':<34}{baseline:>9.1f}{n / baseline:>9.2f}{1.0:>12.2f}x")
    print(f"{'watcher: drain the burst':<34}{drained:>9.1f}{n / drained:>9.2f}{baseline / drained:>12.2f}x")
    print(f"watcher peak RSS (largest process): {usage.ru_maxrss / 1024:.0f} MB")
    print(
        f"watcher CPU while idle for {args.idle:.0f} s: {idle_cpu:.2f} s ({100 * idle_cpu / args.idle:.2f}% of one core)"
    )


if __name__ == "__main__":
    main()
