"""Memory benchmark: peak RSS of `scanarchive ingest` on one long PDF scan.

    .venv/bin/python bench/memory.py [--pages 200] [--distinct 8] [--encoding jpeg] [--baseline [REF]]

Builds one PDF of --pages synthetic handwritten note pages (scanarchive.demo.synth,
300 dpi greyscale, 8.5 x 5.5 in, four handwriting fonts, skew, blur, noise).
To save generation time only --distinct pages are rendered and then repeated
in order to make up the page count (the output says so). --encoding jpeg
(default: what a document scanner writes, quality 75) or png (lossless Flate,
about 2.1 MB a page, so 200 pages make a ~430 MB file) is embedded by img2pdf
without re-encoding.

The PDF is ingested into a fresh archive with `scanarchive ingest FILE` in a
child process. Every ~50 ms this script walks the child's process tree in
/proc (the scanarchive process and its engine subprocesses: pdftoppm,
tesseract, ...) and sums their resident set sizes; the peak of that sum is the
figure checked against the target (<= 500 MB, MB = 10^6 bytes). The
ingest's private temp folders (SCANARCHIVE_TMPDIR, pointed at a fresh folder
on /dev/shm as by default) are tmpfs, i.e. RAM that no RSS shows, so the bytes
of the files in them are sampled too and reported beside the RSS (and added
to it in "RSS + tmpfs"). A child between vfork() and exec() (how subprocess starts an engine) runs
in its parent's address space and reads as a copy of it; kcmp(2) finds such
a child and it is not counted twice (the output says how often). Sampling can
miss a spike shorter than the interval, so the kernel's own figure is shown
too: ru_maxrss from os.wait4 on the ingest and getrusage(RUSAGE_CHILDREN) after
it (both are the largest single process of the tree, never a sum), taken by a
tiny launcher process so that this script's own RSS does not leak into them.

--baseline [REF] (REF defaults to HEAD) first ingests the same PDF with the
package scanarchive/ as it is in git REF (a copy put first on PYTHONPATH, which
the parser child and the engine workers inherit; a module only the working tree
has is copied too, unused), then with the working tree, and prints both: a
side-by-side comparison of the memory work in one invocation on a shared
machine.

--timeline N prints, for N equal slices of each run, its largest summed sample
and what made it up: when the peak happens, and which processes are alive then.

Bare engines, for context only (it is not a pipeline): the bare engines on page 1
of the same PDF, one process at a time: `pdftoppm -r 300 -gray` reading the PDF
from a file, the same reading it from stdin (a pipe), and `tesseract` on the
rendered page; each one's ru_maxrss.
"""

from __future__ import annotations

import argparse
import ctypes
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import img2pdf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scanarchive.demo import synth  # noqa: E402

TARGET_MB = 500.0
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
PASSPHRASE = "benchmark passphrase"


# --- the scan -----------------------------------------------------------------


def make_pdf(path: Path, pages: int, distinct: int, encoding: str) -> None:
    fonts = synth.available_fonts()
    if not fonts:
        raise SystemExit("no handwriting fonts installed (./dev.sh installs them)")
    images: list[bytes] = []
    for i in range(min(distinct, pages)):
        note = synth.synthetic_note(5000 + i, sentences=4)
        image = synth.render_page(
            note, font=fonts[i % len(fonts)], rotation_deg=(i % 5 - 2) * 0.5, noise=5.0, blur=0.4, seed=i
        )
        out = io.BytesIO()
        if encoding == "jpeg":
            image.save(out, format="JPEG", quality=75, dpi=(300, 300))
        else:
            image.save(out, format="PNG", dpi=(300, 300))
        images.append(out.getvalue())
    path.write_bytes(img2pdf.convert([images[i % len(images)] for i in range(pages)]))


# --- the process tree ---------------------------------------------------------


def children(pid: int) -> list[int]:
    """Direct children of `pid` (of any of its threads)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            found.extend(int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split())
        except (OSError, ValueError):
            continue
    return found


def children_by_scan(pid: int) -> list[int]:
    """Fallback when /proc/PID/task/TID/children is missing: scan every process's parent."""
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry))
    return found


_LIBC = ctypes.CDLL(None, use_errno=True)
_SYS_KCMP = {"x86_64": 312, "aarch64": 272}.get(os.uname().machine)
_KCMP_VM = 1


def same_memory(pid: int, parent: int) -> bool:
    """Whether `pid` runs in its parent's very address space: a child between vfork() (what subprocess
    uses) and exec(). Its statm then reads the parent's pages, which a sum would count twice. kcmp(2)
    says so exactly; where it is not allowed or not known, the process is counted (an over-estimate)."""
    if _SYS_KCMP is None:
        return False
    return int(_LIBC.syscall(_SYS_KCMP, pid, parent, _KCMP_VM, 0, 0)) == 0


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return 0


def pss_bytes(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    match = re.search(r"^Pss:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


def tmpfs_bytes(folder: Path) -> int:
    """Bytes allocated to the files under `folder` (files come and go while walking: best effort)."""
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except OSError:
                continue
    return total


def command(pid: int) -> str:
    """A short name: the executable's, or for `python -m MODULE` the module's."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "?"
    if "-m" in argv[:-1]:
        return argv[argv.index("-m") + 1]
    return Path(argv[0]).name or "?"


@dataclass
class TreeSampler:
    """Samples the summed RSS (and PSS) of a process tree until stopped."""

    root: int
    interval: float
    skip_root: bool = False
    tmpfs: Path | None = None  # a folder on tmpfs whose files' bytes are sampled too (RAM no RSS shows)
    peak_rss: int = 0
    peak_pss: int = 0
    peak_breakdown: Counter[str] = field(default_factory=Counter)
    peak_by_name: Counter[str] = field(default_factory=Counter)  # each command's own peak (summed over its processes)
    peak_tmpfs: int = 0
    peak_total: int = 0  # RSS + tmpfs, sampled together
    largest_process: int = 0
    most_processes: int = 0
    samples: int = 0
    shared_skipped: int = 0  # samples of a vforked child not yet exec'd: its parent's memory, not counted twice
    started: float = field(default_factory=time.monotonic)
    timeline: list[tuple[float, int, Counter[str]]] = field(default_factory=list)  # (seconds, sum, by command)
    peak_at: float = 0.0  # seconds after the start when the summed RSS peaked
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self._children = children if Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists() else None

    def tree(self) -> list[int]:
        """The tree's processes, less those sharing their parent's memory (vfork, before exec)."""
        pids: list[int] = []
        todo = [(pid, 0) for pid in self._child_pids(self.root)] if self.skip_root else [(self.root, 0)]
        while todo:
            pid, parent = todo.pop()
            if parent and same_memory(pid, parent):
                self.shared_skipped += 1
            else:
                pids.append(pid)
            todo.extend((child, pid) for child in self._child_pids(pid))
        return pids

    def _child_pids(self, pid: int) -> list[int]:
        return self._children(pid) if self._children else children_by_scan(pid)

    def sample(self) -> None:
        rss: dict[int, int] = {pid: rss_bytes(pid) for pid in self.tree()}
        rss = {pid: size for pid, size in rss.items() if size}
        total = sum(rss.values())
        shm = tmpfs_bytes(self.tmpfs) if self.tmpfs else 0
        self.peak_tmpfs = max(self.peak_tmpfs, shm)
        self.peak_total = max(self.peak_total, total + shm)
        by_name: Counter[str] = Counter()
        for pid, size in rss.items():
            by_name[command(pid)] += size
        for name, size in by_name.items():
            self.peak_by_name[name] = max(self.peak_by_name[name], size)
        self.samples += 1
        elapsed = time.monotonic() - self.started
        self.timeline.append((elapsed, total, by_name))
        self.most_processes = max(self.most_processes, len(rss))
        self.largest_process = max([self.largest_process, *rss.values()])
        if total > self.peak_rss:
            self.peak_rss = total
            self.peak_breakdown = by_name
            self.peak_at = elapsed
        self.peak_pss = max(self.peak_pss, sum(pss_bytes(pid) for pid in rss))

    def run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="rss-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


# --- runs -----------------------------------------------------------------------


def scanarchive(*args: str) -> list[str]:
    return [sys.executable, "-m", "scanarchive", *args]


# The kernel's ru_maxrss of an exec'd process starts from the RSS of the process
# it was forked from (the old address space's high-water mark is kept across
# exec), so a child of this script would inherit this script's RSS. Commands
# are therefore started by a tiny launcher (a fresh `python -I -S`, ~10 MB) that
# forks, execs the command, and writes its os.wait4 and RUSAGE_CHILDREN figures.
LAUNCHER = """
import json, os, resource, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
children = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as out:
    json.dump({"wait4": usage.ru_maxrss, "children": children.ru_maxrss}, out)
sys.exit(min(255, abs(os.waitstatus_to_exitcode(status))))
"""


@dataclass
class Launched:
    seconds: float
    exit_code: int
    maxrss_wait4: int  # bytes: the largest single process of the tree (never a sum)
    maxrss_children: int  # bytes: getrusage(RUSAGE_CHILDREN) in the launcher, after the wait
    sampler: TreeSampler | None


def launch(
    cmd: list[str],
    work: Path,
    *,
    stdin: Path | None = None,
    stdout: Path | None = None,
    stderr_to_stdout: bool = False,
    interval: float | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    tmpfs: Path | None = None,
) -> Launched:
    result = work / f"rusage-{time.monotonic_ns()}.json"
    with open(stdin or os.devnull, "rb") as inp, open(stdout or os.devnull, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", LAUNCHER, str(result), *cmd],
            stdin=inp,
            stdout=out,
            stderr=subprocess.STDOUT if stderr_to_stdout else subprocess.DEVNULL,
            env=env,
            cwd=cwd,
        )
        sampler = TreeSampler(proc.pid, interval, skip_root=True, tmpfs=tmpfs) if interval else None
        if sampler is not None:
            sampler.start()
        try:
            code = proc.wait()
        finally:
            if sampler is not None:
                sampler.stop()
        seconds = time.perf_counter() - start
    usage = json.loads(result.read_text()) if result.exists() else {"wait4": 0, "children": 0}
    return Launched(seconds, code, int(usage["wait4"]) * 1024, int(usage["children"]) * 1024, sampler)


def baseline(pdf: Path, work: Path) -> list[tuple[str, Launched]]:
    page = work / "page1"
    render = ["pdftoppm", "-f", "1", "-l", "1", "-r", "300", "-gray", "-singlefile"]
    runs = [
        ("pdftoppm -r 300 -gray FILE.pdf (PDF read from a file)", launch([*render, str(pdf), str(page)], work)),
        (
            "pdftoppm -r 300 -gray - (the PDF piped on stdin)",
            launch([*render, "-"], work, stdin=pdf, stdout=work / "page1-stdin.pgm"),
        ),
        ("tesseract page.pgm stdout", launch(["tesseract", str(page.with_suffix(".pgm")), "stdout"], work)),
    ]
    for name, run in runs:
        if run.exit_code != 0:
            raise SystemExit(f"baseline {name!r} failed (exit {run.exit_code})")
    return runs


BASELINE_PATHS = ("scanarchive",)


def baseline_package(ref: str, dest: Path) -> Path:
    """A copy of the working tree's package with BASELINE_PATHS as they are in git `ref`; the folder for PYTHONPATH."""
    shutil.copytree(ROOT / "scanarchive", dest / "scanarchive", ignore=shutil.ignore_patterns("__pycache__"))
    # A REF from before the data moved into the package read its defaults from ../config.
    (dest / "config").mkdir()
    for name in ("default.toml", "retention", "sheets"):
        (dest / "config" / name).symlink_to(ROOT / "scanarchive" / "data" / name)
    git = ["git", "-C", str(ROOT)]
    names = subprocess.run(
        [*git, "ls-tree", "-r", "--name-only", ref, "--", *BASELINE_PATHS], check=True, capture_output=True, text=True
    ).stdout.split()
    for name in names:
        blob = subprocess.run([*git, "show", f"{ref}:{name}"], check=True, capture_output=True).stdout
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_bytes(blob)
    probe = subprocess.run(
        [sys.executable, "-c", "import scanarchive.ocr.rapidocr as m; print(m.__file__)"],
        env=dict(os.environ, PYTHONPATH=str(dest)),
        cwd=dest,  # `python -c` and `-m` put the current folder first on sys.path
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not probe.startswith(str(dest)):
        raise SystemExit(f"the baseline copy is not the one imported ({probe})")
    return dest


@dataclass
class Ingest:
    label: str
    run: Launched
    output: str


def ingest(label: str, pdf: Path, work: Path, interval: float, pythonpath: Path | None) -> Ingest:
    """`scanarchive ingest` of `pdf` into a fresh archive, its process tree and temp folders sampled."""
    folder = work / label.split()[0]
    folder.mkdir()
    archive, secret = folder / "archive", folder / "passphrase"
    secret.write_text(PASSPHRASE)
    secret.chmod(0o600)  # a passphrase file others can read is refused
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    cwd = pythonpath or folder  # `python -m` puts the current folder first on sys.path
    subprocess.run(
        scanarchive("--archive", str(archive), "init", "--passphrase-file", str(secret), "--kdf-seconds", "0.05"),
        check=True,
        capture_output=True,
        env=env,
        cwd=cwd,
    )
    shm = Path("/dev/shm")  # the default parent of the private folders; ours is a fresh 0700 mkdtemp
    tmp = Path(tempfile.mkdtemp(prefix="sa-memory-tmp-", dir=shm if shm.is_dir() else None))
    env["SCANARCHIVE_TMPDIR"] = str(tmp)
    log = folder / "ingest.log"
    scan = folder / pdf.name  # ingest removes the scan it has sealed: each run gets its own copy
    shutil.copyfile(pdf, scan)
    try:
        run = launch(
            scanarchive("--archive", str(archive), "ingest", str(scan)),
            work,
            stdout=log,
            stderr_to_stdout=True,
            interval=interval,
            env=env,
            cwd=cwd,
            tmpfs=tmp,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Ingest(label, run, log.read_text(errors="replace").strip())


def report(result: Ingest, pages: int, buckets: int = 0) -> None:
    run, s = result.run, result.run.sampler
    assert s is not None
    print(f"\n== {result.label}")
    if run.exit_code != 0:
        print(f"scanarchive ingest FAILED (exit {run.exit_code}) after {run.seconds:.1f} s:\n{result.output}")
    else:
        print("scanarchive ingest: " + (result.output.splitlines()[0] if result.output else ""))
    verdict = "pass" if s.peak_rss <= TARGET_MB * 1e6 else "MISS"
    print(f"peak RSS of the ingest process tree (sum): {mb(s.peak_rss)}   target <= {TARGET_MB:.0f} MB: {verdict}")
    print("  at that peak: " + ", ".join(f"{name} {mb(v)}" for name, v in s.peak_breakdown.most_common()))
    print("  each command's own peak: " + ", ".join(f"{name} {mb(v)}" for name, v in s.peak_by_name.most_common()))
    print(
        f"  private temp folders (tmpfs, RAM not in any RSS): peak {mb(s.peak_tmpfs)}; "
        f"peak RSS + tmpfs (sampled together): {mb(s.peak_total)}"
    )
    print(f"  peak PSS (shared pages counted once, sampled separately): {mb(s.peak_pss)}")
    print(
        f"  {s.samples} samples; at most {s.most_processes} processes at once; "
        f"largest single process seen {mb(s.largest_process)}; {s.shared_skipped} process sample(s) not "
        "counted: a child between vfork and exec, in its parent's memory (kcmp KCMP_VM)"
    )
    print(
        f"ru_maxrss of the ingest (os.wait4 on it: its largest single process, never a sum): {mb(run.maxrss_wait4)}; "
        f"getrusage(RUSAGE_CHILDREN) after it: {mb(run.maxrss_children)}"
    )
    print(f"throughput: {pages} pages in {run.seconds:.1f} s = {pages / run.seconds:.2f} pages/s")
    print(f"  the peak came {s.peak_at:.1f} s after the start ({s.peak_at / run.seconds:.0%} of the run)")
    print_timeline(s, buckets)


def print_timeline(s: TreeSampler, buckets: int) -> None:
    """The largest summed sample of each of `buckets` equal slices of the run, with each command's share then."""
    if buckets <= 0 or not s.timeline:
        return
    end = s.timeline[-1][0] or 1.0
    print(f"  timeline ({buckets} slices; the largest sample of each, and what made it up):")
    for i in range(buckets):
        low, high = end * i / buckets, end * (i + 1) / buckets
        inside = [t for t in s.timeline if low <= t[0] < high or (i == buckets - 1 and t[0] == end)]
        if not inside:
            continue
        at, total, by_name = max(inside, key=lambda t: t[1])
        parts = ", ".join(f"{name} {mb(v)}" for name, v in by_name.most_common())
        print(f"    {at:7.1f} s  {mb(total):>7}  {parts}")


def mb(size: float) -> str:
    return f"{size / 1e6:.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--distinct", type=int, default=8, help="distinct pages rendered, then repeated (default 8)")
    parser.add_argument("--encoding", choices=("jpeg", "png"), default="jpeg", help="page images in the PDF")
    parser.add_argument("--interval", type=float, default=0.05, help="sampling interval, seconds (default 0.05)")
    parser.add_argument(
        "--baseline",
        nargs="?",
        const="HEAD",
        metavar="REF",
        help="first ingest with the package scanarchive/ as in git REF (default HEAD), then the working tree",
    )
    parser.add_argument(
        "--timeline",
        type=int,
        default=0,
        metavar="N",
        help="print the tree's RSS over the run in N slices (default: none)",
    )
    args = parser.parse_args()
    if args.pages < 1 or args.distinct < 1 or args.interval <= 0:
        parser.error("--pages and --distinct must be at least 1, --interval above 0")

    with tempfile.TemporaryDirectory(prefix="sa-memory-") as tmp:
        work = Path(tmp)
        pdf = work / "stack.pdf"
        started = time.perf_counter()
        make_pdf(pdf, args.pages, args.distinct, args.encoding)
        generated = time.perf_counter() - started
        size = pdf.stat().st_size
        distinct = min(args.distinct, args.pages)
        how = "lossless Flate (PNG)" if args.encoding == "png" else "JPEG quality 75, as a scanner writes"
        print(
            f"scan: one PDF of {args.pages} pages, 300 dpi greyscale 8.5 x 5.5 in synthetic handwriting, "
            f"{how}, {mb(size)}; only {distinct} distinct pages were rendered, repeated in order to make "
            f"{args.pages} (generated in {generated:.0f} s)"
        )
        print(
            f"machine: {len(os.sched_getaffinity(0))} cores; sampling the process tree every {args.interval * 1000:.0f} ms"
        )

        base = baseline(pdf, work)

        results: list[Ingest] = []
        if args.baseline is not None:
            base_src = baseline_package(args.baseline, work / "baseline-src")
            where = ", ".join(f"{p}/" for p in BASELINE_PATHS)
            label = f"baseline: {where} as in git {args.baseline}, the rest of the working tree"
            results.append(ingest(label, pdf, work, args.interval, base_src))
        results.append(ingest("working tree", pdf, work, args.interval, None))

    for result in results:
        report(result, args.pages, args.timeline)
    if len(results) == 2:
        old, new = (r.run.sampler for r in results)
        assert old is not None and new is not None
        print(
            f"\nworking tree vs baseline: peak RSS {mb(new.peak_rss)} / {mb(old.peak_rss)} = "
            f"{new.peak_rss / old.peak_rss:.2f}x; RSS + tmpfs {mb(new.peak_total)} / {mb(old.peak_total)} = "
            f"{new.peak_total / old.peak_total:.2f}x; time {results[1].run.seconds:.0f} s / "
            f"{results[0].run.seconds:.0f} s = {results[1].run.seconds / results[0].run.seconds:.2f}x"
        )
    print("\ncontext (not a pipeline): bare engines on page 1 of the same PDF, one process at a time:")
    for name, bare in base:
        print(f"  {name:<56} ru_maxrss {mb(bare.maxrss_wait4):>7}  {bare.seconds:5.1f} s")
    if any(r.run.exit_code != 0 for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
