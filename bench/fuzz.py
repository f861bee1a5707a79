"""Fuzzing, many iterations: the targets of tests/kits/fuzzkit.py (seal, intake, ocrjson, qr) without stopping at a crash.

    .venv/bin/python bench/fuzz.py [--iterations 20000] [--target seal|intake|ocrjson|qr|all] [--seed 1]
                                   [--save DIR]

Hypothesis generates the inputs (max_examples = --iterations, generation only,
no shrinking, no example database). Each input goes through the target's
check; an exception other than the module's typed error (or a broken
property, or a run past the time limit: a hang) is recorded, grouped by
exception type and the innermost scanarchive line it came from, and the
smallest input of each group is printed (and written to --save DIR, one file
per crash). Exit status 1 if any target found a crash.

Everything is synthetic; the inputs are generated in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

from tests.kits.fuzzkit import TARGETS, Hang, Target  # noqa: E402


@dataclass
class Crash:
    kind: str
    where: str
    message: str
    count: int = 0
    example: object = None
    size: int = 0


@dataclass
class Stats:
    iterations: int = 0
    seconds: float = 0.0
    slowest: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)
    crashes: dict[tuple[str, str], Crash] = field(default_factory=dict)


def _where(exc: BaseException) -> str:
    """The innermost frame in scanarchive (else in the fuzz kit, else the innermost of all)."""
    frames = traceback.extract_tb(exc.__traceback__)
    for part in ("/scanarchive/", "fuzzkit.py"):
        inside = [f for f in frames if part in f.filename]
        if inside:
            frame = inside[-1]
            return f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}"
    if frames:
        return f"{Path(frames[-1].filename).name}:{frames[-1].lineno}"
    return "?"


def _size(value: object) -> int:
    data = getattr(value, "data", value)
    return len(data) if isinstance(data, (bytes, str)) else 0


def run_target(target: Target, iterations: int, run_seed: int, folder: Path) -> Stats:
    stats = Stats()
    progress = max(1000, iterations // 10)
    begun = time.perf_counter()

    @settings(
        max_examples=iterations,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @seed(run_seed)
    @given(target.inputs())
    def fuzz(value: object) -> None:
        stats.iterations += 1
        started = time.perf_counter()
        try:
            outcome = target.check(value, folder)
        except KeyboardInterrupt:
            raise
        except (Exception, Hang) as exc:
            key = (type(exc).__name__, _where(exc))
            crash = stats.crashes.setdefault(key, Crash(key[0], key[1], str(exc)[:200]))
            crash.count += 1
            if crash.example is None or _size(value) < crash.size:
                crash.example, crash.size, crash.message = value, _size(value), str(exc)[:200]
            outcome = "CRASH"
        elapsed = time.perf_counter() - started
        stats.slowest = max(stats.slowest, elapsed)
        stats.outcomes[outcome] = stats.outcomes.get(outcome, 0) + 1
        if stats.iterations % progress == 0:
            found = sum(c.count for c in stats.crashes.values())
            print(f"   ... {stats.iterations} ({time.perf_counter() - begun:.0f} s, {found} crashing)", flush=True)

    started = time.perf_counter()
    with _quiet_stderr(folder / f"{target.name}-stderr.log"):
        fuzz()
    stats.seconds = time.perf_counter() - started
    return stats


@contextmanager
def _quiet_stderr(log: Path) -> Iterator[None]:
    """libtiff and libjpeg write warnings straight to file descriptor 2: send them to a file."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(log, "ab") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _save(save: Path, name: str, n: int, crash: Crash) -> Path:
    save.mkdir(parents=True, exist_ok=True)
    value = crash.example
    path = save / f"{name}-{n}.json"
    doc: dict[str, object] = {"target": name, "exception": crash.kind, "where": crash.where, "message": crash.message}
    if isinstance(value, bytes):
        doc["hex"] = value.hex()
    elif isinstance(value, str):
        doc["text"] = value
    else:
        doc["name"] = getattr(value, "name", "")
        doc["hex"] = bytes(getattr(value, "data", b"")).hex()
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=20_000, help="inputs per target (default 20000)")
    parser.add_argument("--target", choices=[*TARGETS, "all"], default="all")
    parser.add_argument("--seed", type=int, default=1, help="the generator's seed (same seed, same inputs)")
    parser.add_argument("--save", type=Path, help="write each crash's smallest input here")
    args = parser.parse_args()
    names = list(TARGETS) if args.target == "all" else [args.target]
    total_crashes = 0
    summary = []
    with tempfile.TemporaryDirectory(prefix="scanarchive-fuzz-") as scratch:
        for name in names:
            print(f"== {name}: up to {args.iterations} inputs (seed {args.seed})", flush=True)
            stats = run_target(TARGETS[name], args.iterations, args.seed, Path(scratch))
            crashes = sum(c.count for c in stats.crashes.values())
            total_crashes += len(stats.crashes)
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(stats.outcomes.items(), key=lambda kv: -kv[1]))
            print(
                f"   {stats.iterations} iterations in {stats.seconds:.0f} s "
                f"({stats.iterations / max(stats.seconds, 1e-9):.0f}/s, slowest {stats.slowest:.2f} s)"
            )
            print(f"   outcomes: {outcomes}")
            print(f"   crashes: {crashes} inputs, {len(stats.crashes)} distinct")
            for n, crash in enumerate(sorted(stats.crashes.values(), key=lambda c: -c.count), start=1):
                print(f"   [{n}] {crash.kind} at {crash.where} x{crash.count}: {crash.message}")
                print(f"       smallest input: {crash.example!r}"[:600])
                if args.save:
                    print(f"       saved: {_save(args.save, name, n, crash)}")
            summary.append((name, stats.iterations, len(stats.crashes), crashes, stats.seconds))
    print("\ntarget    iterations  distinct crashes  crashing inputs  seconds")
    for name, iterations, distinct, crashes, seconds in summary:
        print(f"{name:<9} {iterations:>10}  {distinct:>16}  {crashes:>15}  {seconds:>7.0f}")
    return 1 if total_crashes else 0


if __name__ == "__main__":
    sys.exit(main())
