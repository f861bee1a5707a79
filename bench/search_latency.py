"""Search benchmark: latency on a large index, index size per page, and unlock + sync of new records.

    .venv/bin/python bench/search_latency.py [--pages 100000] [--queries 200] [--sync 1000] [--grow 20]
                                             [--corpus zipf|small]

Everything is SYNTHETIC (word lists below and scanarchive.demo.synth's vocabulary); no real client data.
Targets (the issue): search p95 <= 50 ms; unlock + sync of 1,000 new records <= 5 s.

1. Index. --pages pages of OCR-like text, 120-200 words each, with Zipf (s=1)
   word frequencies over a ranked word list, and ~10 % of words carrying one or
   two OCR-style character errors (confusions such as rn/m, cl/d, l/1, e/c, and
   dropped, inserted or swapped letters). ~3 pages per record (1-5), clients
   C-0001..C-2000, session dates over 5 years from 2020, a few ticked tick-box
   facts. Same seed, same text, every run.
   Corpus "zipf" (default): ~900 words. The ranking starts with HEAD (function
   words and the words nearly every progress note has: client, reported,
   session ...), then general English words, general note words and the 237
   clinical words of synth.vocabulary(), in a seeded order. Real notes have a
   vocabulary like this (a long Zipfian tail), so a clinical word is on a few
   per cent of the pages (p50 ~4 %, p95 ~13 %). Corpus "small": the first corpus
   of this benchmark, synth.vocabulary() alone (237 words); every word is then
   a content word and the median query word is on ~19 % of the pages, which
   real notes do not look like; kept to compare with earlier figures.
   The index is SearchIndex's own encrypted database (random 32-byte key),
   loaded with SearchIndex.add_records in 2,000-page transactions. Step 4
   measures add_record, one record per transaction, on the full index: what
   sync_index pays per record.
2. Latency. --queries queries of each kind through SearchIndex.search(),
   default (fuzzy) and exact=True: one word (a clinical word), two words,
   misspelled (a clinical word with one transposition or substitution, not a
   corpus word), and "common word", the pessimistic class reported apart: one
   of COMMON (zipf: on 39-100 % of the pages) or the 10 top-ranked words (small).
   A word query ranks every matching page with bm25, so the common words show
   what a word on most pages costs. Fuzzy expansion runs only when the exact
   words fill fewer pages than the limit (20); the table says how often.
   The first queries after opening the index (the first pages decrypted, the
   vocabulary tiers read) are reported apart and not in the percentiles.
3. Baseline for 1-2, built and queried in the same run: a plain FTS5 index as
   one would first write it (scanarchive's own design up to index schema 2;
   BASELINE_SCHEMA): stdlib sqlite3, unencrypted, record id and page as
   UNINDEXED FTS5 columns, one statement joining each matching page to its
   record, ranked by bm25, with snippets; the same MATCH as exact=True and the
   same cache size as ours. The stdlib's SQLite is older than SQLCipher's, so
   the same plain file is also queried through sqlcipher3 without a key
   ("unkeyed"). Queries rotate between the four runs so machine noise hits
   all alike.
4. Incremental add into the full index: --grow records, one transaction each
   (sync_index's path, add_record), on ours and on the baseline; extrapolated
   to 1,000 records.
5. Sync. A real archive (Archive.create, kdf_seconds=0.05) gets --sync small
   one-page records (600x200 px PNG scans of a few synthetic words) through
   pipeline.ingest_file with --client/--date, so they are filed. OCR is a FAKE
   recogniser returning synthetic OCR words (120-200 per page, as in 1): this
   benchmarks sync, not OCR. Then, timed: unlock + open_index + sync_index of
   the new records (the index already exists: it was opened and synced once
   before the ingest). Baseline, same run: unlock + decrypting the same OCR
   sections (Archive.ocr_pages) without indexing, before and after the sync;
   and, as sync commits once per record, the disk's floor: as many one-row
   SQLite transactions in the same folder.

Machines are shared and noisy: only ratios measured side by side mean much. The "cpu" columns
are the CPU time of the searching thread (time.thread_time()): on a busy machine the wall time
also holds the time spent waiting for a core; the CPU time is close to what an idle machine
would take.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import sqlcipher3
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scanarchive.archive import index as search_index  # noqa: E402
from scanarchive.archive import sync  # noqa: E402
from scanarchive.archive.index import IndexRecord, SearchIndex  # noqa: E402
from scanarchive.archive.layout import INDEX, Archive  # noqa: E402
from scanarchive.archive.query import parse, to_match  # noqa: E402
from scanarchive.demo import synth  # noqa: E402
from scanarchive.ocr import document, engine  # noqa: E402

SEED = 20240601
P95_TARGET_MS = 50.0
SYNC_TARGET_S = 5.0
SYNC_TARGET_RECORDS = 1000
PASSPHRASE = "benchmark passphrase, synthetic archive"
FACT_KEYS = (
    "risk.si_denied",
    "risk.safety_plan",
    "mood.euthymic",
    "mood.depressed",
    "mood.anxious",
    "topic.sleep",
    "topic.family",
    "topic.work",
    "intervention.cbt",
    "homework.assigned",
)
# OCR confusions of handwriting: (what was written, what the engine read)
CONFUSIONS = (
    ("rn", "m"),
    ("m", "rn"),
    ("cl", "d"),
    ("d", "cl"),
    ("l", "1"),
    ("i", "l"),
    ("l", "i"),
    ("e", "c"),
    ("c", "e"),
    ("o", "0"),
    ("a", "o"),
    ("o", "a"),
    ("h", "b"),
    ("n", "u"),
    ("u", "n"),
    ("t", "f"),
    ("s", "5"),
    ("g", "q"),
    ("v", "y"),
    ("w", "vv"),
)
LETTERS = "abcdefghijklmnopqrstuvwxyz"
START_DATE = date(2020, 1, 1)
DAYS = 5 * 365


# --- synthetic OCR text --------------------------------------------------------


def _words(text: str) -> list[str]:
    return text.split()


# The Zipf ranking of the default corpus starts with these, in this order: function words and the
# words nearly every progress note has. The content words among them are the "common word" queries.
HEAD = _words(
    "the and to client of a was reported in her session that she he his with for discussed is on about"
    " week at it as had not feeling this be mood but by from they sleep have are work or family an were"
    " plan which would there all been their one has so if more when will what no out up into them can"
    " than who some other also then its over only could these after him may do did any my we me our you"
    " your because very just how such both each well much where most through before between under again"
    " while still should now even those being same off down here since without until during though"
    " against own few why further once yet nor per"
)
COMMON = ("client", "reported", "session", "discussed", "week", "feeling", "mood", "sleep", "work", "family", "plan")
# Then, in a seeded random order, these and synth.vocabulary() (the clinical words queries use).
NOTE_WORDS = _words(
    "patient states stated noted goals progress therapy today time home mother father partner friend"
    " support next last days weeks month months day night continue continued identified practice skills"
    " thoughts able difficult difficulty better worse improvement increased decreased symptoms history"
    " current recent recently often sometimes felt says said describes reports denies denied endorsed"
    " presented appeared affect engaged good low high level levels several many around related including"
    " following review reviewed assigned scheduled follow safety risk concerns concern issues issue"
    " stressful job school relationship relationships children child son wife parents medication"
    " medications dose doctor psychiatrist referral group phone call called email letter hours minutes"
    " year years ago past future life people person things something nothing everything feel want wants"
    " wanted need needs needed trying tried try going went get got make made take took give gave know"
    " knew think see saw come came back first new old long little big small great hard easy best right"
    " left late later less lot bit quite really always never usually already almost enough together"
    " alone away agreed plans goal sessions attended cancelled missed arrived tired energy"
    " anxious worried worries angry upset happy sad calm hopeful hopeless overwhelmed frustrated"
    " irritable motivated withdrawn isolated connected present oriented alert cooperative tearful"
    " euthymic depressed dysphoric flat restricted congruent suicidal ideation intent harm self"
    " protective factors crisis contact emergency assessment diagnosis treatment intervention cbt dbt"
    " act emdr psychoeducation validation exploration processing worksheet diary log record scale score"
    " phq gad questionnaire baseline reduction increase change changes pattern patterns trigger triggers"
    " response responses behaviour behaviours belief beliefs values"
)
GENERAL_WORDS = _words(
    "water food car house money book computer music movie game garden kitchen dog cat weekend birthday"
    " christmas summer winter spring autumn weather rain city town street office meeting manager boss"
    " colleague team project email train bus walk run gym football tennis beach park holiday trip"
    " flight hotel restaurant coffee tea breakfast lunch dinner supper bread wine beer alcohol smoking"
    " cigarettes cannabis caffeine shopping cleaning laundry bills rent mortgage loan debt budget salary"
    " benefits pension insurance hospital clinic nurse surgery pain headache back knee"
    " stomach cold flu covid vaccine test results blood pressure weight diet exercise running"
    " yoga dancing reading writing drawing knitting baking fishing camping hiking singing church mosque"
    " temple prayer faith community neighbours volunteer charity class course degree exam exams essay"
    " teacher student university college nursery daycare baby toddler teenager grandson granddaughter"
    " uncle aunt cousin nephew niece boyfriend girlfriend fiance ex separation custody court lawyer"
    " police landlord flat apartment move moving packing boxes anniversary funeral"
    " wedding party visit visited visiting text texts message messages social media"
    " television news internet online laptop screen late night nights bed woke waking wake nap naps"
    " dream dreams alarm clock hour minute second third fourth fifth half quarter dozen hundred"
    " thousand january february march april june july august september october"
    " november december tomorrow yesterday tonight earlier soon hardly nearly"
    " especially mainly mostly partly fully slowly quickly carefully clearly openly honestly calmly"
    " angrily sadly happily briefly forward backward inside outside upstairs downstairs"
    " nearby far close closer distance space room rooms door window keys bag wallet clothes shoes"
    " coat hair shower bath teeth pharmacy prescription pills tablets side effects nausea"
    " dizziness gain loss eating meals snacks sugar chocolate fruit vegetables"
    " takeaway pizza sandwich soup pasta rice chicken fish meat cheese eggs milk juice"
    " sertraline fluoxetine citalopram escitalopram venlafaxine mirtazapine quetiapine lorazepam"
    " diazepam zopiclone melatonin propranolol lithium lamotrigine aripiprazole bupropion trazodone"
    " pregabalin olanzapine duloxetine"
)


def zipf_ranking(seed: int) -> list[str]:
    """HEAD in order, then every other word (general, note and clinical) in a seeded order."""
    head = list(dict.fromkeys(HEAD))
    rest = sorted(set(NOTE_WORDS + GENERAL_WORDS) | synth.vocabulary(), key=str)
    rest = [w for w in rest if w not in set(head) and w.isalpha()]
    random.Random(seed + 1).shuffle(rest)
    return head + rest


def small_ranking(seed: int) -> list[str]:
    """The first corpus of this benchmark: synth.vocabulary() alone (237 words), in a seeded order."""
    order = sorted(synth.vocabulary())
    random.Random(seed + 1).shuffle(order)
    return order


class OcrText:
    """Deterministic OCR-like page text: words drawn with Zipf (s = 1) frequencies over `ranked`."""

    def __init__(self, seed: int, ranked: list[str], noise: float = 0.10) -> None:
        self.rng = random.Random(seed)
        self.ranked = ranked
        total = 0.0
        self.cum: list[float] = []
        for rank in range(len(ranked)):
            total += 1.0 / (rank + 1)  # Zipf, s = 1
            self.cum.append(total)
        self.noise = noise

    def misread(self, word: str) -> str:
        rng = self.rng
        for _ in range(2 if rng.random() < 0.2 else 1):
            roll = rng.random()
            if roll < 0.5:
                options = [(a, b) for a, b in CONFUSIONS if a in word]
                if options:
                    a, b = rng.choice(options)
                    at = rng.choice([i for i in range(len(word)) if word.startswith(a, i)])
                    word = word[:at] + b + word[at + len(a) :]
                    continue
            at = rng.randrange(len(word))
            if roll < 0.7 and len(word) > 3:  # a letter lost
                word = word[:at] + word[at + 1 :]
            elif roll < 0.85:  # a stray letter
                word = word[:at] + rng.choice(LETTERS) + word[at:]
            elif len(word) > 1:  # two letters swapped
                at = min(at, len(word) - 2)
                word = word[:at] + word[at + 1] + word[at] + word[at + 2 :]
        return word

    def page_words(self) -> list[str]:
        rng = self.rng
        drawn = rng.choices(self.ranked, cum_weights=self.cum, k=rng.randint(120, 200))
        return [self.misread(w) if rng.random() < self.noise else w for w in drawn]

    def page(self) -> str:
        """One page: OCR lines of 6-14 words."""
        words = self.page_words()
        lines, at = [], 0
        while at < len(words):
            step = self.rng.randint(6, 14)
            lines.append(" ".join(words[at : at + step]))
            at += step
        return "\n".join(lines)


@dataclass(frozen=True)
class Record:
    seq: int
    record_id: str
    client_code: str
    session_date: str
    record_class: str
    pages: list[tuple[int, str]]
    facts: list[tuple[int, str]]


class RecordMaker:
    def __init__(self, text: OcrText, seed: int) -> None:
        self.text = text
        self.rng = random.Random(seed)
        self.seq = 0

    def metadata(self) -> tuple[str, str, str]:
        rng = self.rng
        client = f"C-{rng.randint(1, 2000):04d}"
        day = (START_DATE + timedelta(days=rng.randrange(DAYS))).isoformat()
        return client, day, "psychotherapy" if rng.random() < 0.1 else "progress"

    def facts(self) -> list[tuple[int, str]]:
        if self.rng.random() >= 0.3:
            return []
        return [(1, key) for key in sorted(self.rng.sample(FACT_KEYS, self.rng.randint(1, 3)))]

    def record(self) -> Record:
        self.seq += 1
        client, day, record_class = self.metadata()
        pages = [(n, self.text.page()) for n in range(1, self.rng.randint(1, 5) + 1)]
        record_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        return Record(self.seq, record_id, client, day, record_class, pages, self.facts())


# --- the two indexes -------------------------------------------------------------

# The baseline: a plain FTS5 index as one would first write it (scanarchive's own index up to schema
# version 2): the record id and page number as UNINDEXED columns of the FTS5 table, and one statement
# that joins every matching page to its record, ranks with bm25 and makes the snippets.
BASELINE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS docs (record_id TEXT PRIMARY KEY, seq INTEGER NOT NULL,"
    " client_code TEXT, session_date TEXT, record_class TEXT, indexed INTEGER NOT NULL DEFAULT 1)",
    "CREATE TABLE IF NOT EXISTS facts (record_id TEXT NOT NULL, page INTEGER NOT NULL, key TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS facts_key ON facts(key, record_id)",
    "CREATE INDEX IF NOT EXISTS facts_record ON facts(record_id)",
    "CREATE VIRTUAL TABLE IF NOT EXISTS pages USING fts5("
    f" body, record_id UNINDEXED, page UNINDEXED, tokenize = '{search_index.TOKENIZE}')",
)
BASELINE_SQL = (
    "SELECT p.record_id, d.client_code, d.session_date, d.record_class, p.page,"
    " snippet(pages, 0, '[', ']', '…', 10), bm25(pages)"
    " FROM pages p JOIN docs d ON d.record_id = p.record_id WHERE pages MATCH ?"
    " ORDER BY 7, d.session_date DESC LIMIT ?"
)


def as_index_record(r: Record) -> IndexRecord:
    return IndexRecord(r.seq, r.record_id, r.client_code, r.session_date, r.record_class, r.pages, r.facts)


def plain_bulk_insert(db: sqlite3.Connection, records: list[Record]) -> None:
    db.executemany(
        "INSERT INTO facts(record_id, page, key) VALUES (?,?,?)",
        [(r.record_id, p, k) for r in records for p, k in r.facts],
    )
    db.executemany(
        "INSERT INTO docs(record_id, seq, client_code, session_date, record_class, indexed) VALUES (?,?,?,?,?,1)",
        [(r.record_id, r.seq, r.client_code, r.session_date, r.record_class) for r in records],
    )
    db.executemany(
        "INSERT INTO pages(body, record_id, page) VALUES (?,?,?)",
        [(text, r.record_id, page) for r in records for page, text in r.pages],
    )
    db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('last_seq', ?)", (str(max(r.seq for r in records)),))


def plain_open(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    db.execute(f"PRAGMA cache_size = -{search_index.CACHE_KIB}")
    db.execute("PRAGMA secure_delete = ON")
    for statement in BASELINE_SCHEMA:
        db.execute(statement)
    return db


def plain_add_record(db: sqlite3.Connection, r: Record) -> None:
    """One record into the baseline (replacing it first, as add_record does)."""
    db.execute("DELETE FROM pages WHERE record_id = ?", (r.record_id,))
    db.execute("DELETE FROM facts WHERE record_id = ?", (r.record_id,))
    db.executemany("INSERT INTO facts(record_id, page, key) VALUES (?,?,?)", [(r.record_id, p, k) for p, k in r.facts])
    db.execute(
        "INSERT OR REPLACE INTO docs(record_id, seq, client_code, session_date, record_class, indexed)"
        " VALUES (?,?,?,?,?,1)",
        (r.record_id, r.seq, r.client_code, r.session_date, r.record_class),
    )
    db.executemany("INSERT INTO pages(body, record_id, page) VALUES (?,?,?)", [(t, r.record_id, p) for p, t in r.pages])
    db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('last_seq', ?)", (str(r.seq),))


def plain_search(db: Any, query: str, limit: int = 20) -> int:
    """The baseline's search: the same MATCH as exact=True, one statement, then each hit's tick boxes."""
    rows = db.execute(BASELINE_SQL, (to_match(parse(query), None), limit)).fetchall()
    for row in rows:
        db.execute("SELECT DISTINCT key FROM facts WHERE record_id = ? ORDER BY key", (row[0],)).fetchall()
    return len(rows)


def build(work: Path, pages: int, key: bytes, ranking: list[str]) -> tuple[Path, Path, float, float, int, RecordMaker]:
    ours_path, plain_path = work / "index.db", work / "plain.db"
    index = SearchIndex(ours_path, key)
    plain = plain_open(plain_path)
    maker = RecordMaker(OcrText(SEED, ranking), SEED + 2)
    built = 0
    ours_s = plain_s = 0.0
    next_report, batch_pages = 10_000, 2_000
    started = time.perf_counter()
    while built < pages:
        batch: list[Record] = []
        in_batch = 0
        while in_batch < min(batch_pages, pages - built):
            batch.append(maker.record())
            in_batch += len(batch[-1].pages)
        t0 = time.perf_counter()
        index.begin()
        index.add_records([as_index_record(r) for r in batch])
        index.commit()
        t1 = time.perf_counter()
        plain.execute("BEGIN IMMEDIATE")
        plain_bulk_insert(plain, batch)
        plain.execute("COMMIT")
        t2 = time.perf_counter()
        ours_s += t1 - t0
        plain_s += t2 - t1
        built += in_batch
        if built >= pages:  # the words of every page into `terms`, at once (as after a rebuild)
            t0 = time.perf_counter()
            index.update_terms()
            ours_s += time.perf_counter() - t0
        if built >= next_report or built >= pages:
            print(
                f"  built {built:>7,} pages ({maker.seq:,} records): encrypted {ours_s:.1f} s, plain {plain_s:.1f} s,"
                f" wall {time.perf_counter() - started:.0f} s",
                flush=True,
            )
            next_report += 10_000
    index.close()
    plain.close()
    return ours_path, plain_path, ours_s, plain_s, built, maker


# --- queries ------------------------------------------------------------------------


def misspell(word: str, rng: random.Random, known: frozenset[str]) -> str:
    while True:
        at = rng.randrange(len(word) - 1)
        if rng.random() < 0.5 and word[at] != word[at + 1]:
            wrong = word[:at] + word[at + 1] + word[at] + word[at + 2 :]
        else:
            at = rng.randrange(len(word))
            wrong = word[:at] + rng.choice(LETTERS.replace(word[at], "")) + word[at + 1 :]
        if wrong not in known:
            return wrong


def make_queries(count: int, seed: int, ranking: list[str], common: list[str]) -> dict[str, list[str]]:
    """One word, two words and misspelled: clinical words (synth.vocabulary()), as notes are searched
    for; common word: one of `common` (on a third to all of the pages), reported apart."""
    rng = random.Random(seed)
    vocab = sorted(synth.vocabulary())
    known = frozenset(ranking)
    return {
        "one word": [rng.choice(vocab) for _ in range(count)],
        "two words": [" ".join(rng.sample(vocab, 2)) for _ in range(count)],
        "misspelled": [misspell(rng.choice(vocab), rng, known) for _ in range(count)],
        "common word": [rng.choice(common) for _ in range(count)],
    }


def ms(seconds: float) -> float:
    return seconds * 1000.0


def pct(values: list[float], p: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


@dataclass
class Timings:
    fuzzy: list[float]
    exact: list[float]
    plain: list[float]
    unkeyed: list[float]
    cpu: tuple[list[float], list[float], list[float], list[float]]  # the same four, this thread's CPU time
    expansion: list[float]
    expanded: list[int]  # queries whose fuzzy search ran the fuzzy phase (exact rows < limit)
    matched_exact: list[int]
    matched_fuzzy: list[int]


@dataclass
class FirstQueries:
    open_ms: float
    first_ms: float  # a word query on a just-opened index (the first pages decrypted)
    first_fuzzy_ms: float  # then a misspelled one (reads the vocabulary tiers it needs)
    all_tiers_ms: float  # just opened again, a word with few neighbours: every tier read
    terms: int


def first_queries(path: Path, key: bytes) -> FirstQueries:
    t0 = time.perf_counter()
    index = SearchIndex(path, key)
    t1 = time.perf_counter()
    index.search("breathing")
    t2 = time.perf_counter()
    index.search("braething")
    t3 = time.perf_counter()
    terms = int(index.db.execute("SELECT count(*) FROM terms").fetchone()[0])
    index.close()
    index = SearchIndex(path, key)
    t4 = time.perf_counter()
    index.search("qqxqzqj")
    t5 = time.perf_counter()
    index.close()
    return FirstQueries(ms(t1 - t0), ms(t2 - t1), ms(t3 - t2), ms(t5 - t4), terms)


def latency(
    ours_path: Path, plain_path: Path, key: bytes, queries: dict[str, list[str]]
) -> tuple[dict[str, Timings], FirstQueries]:
    first = first_queries(ours_path, key)
    index = SearchIndex(ours_path, key)
    plain = sqlite3.connect(str(plain_path), timeout=30, isolation_level=None)
    plain.execute(f"PRAGMA cache_size = -{search_index.CACHE_KIB}")
    unkeyed = sqlcipher3.connect(str(plain_path), timeout=30, isolation_level=None)  # no key: plain file
    unkeyed.execute(f"PRAGMA cache_size = -{search_index.CACHE_KIB}")
    for warm in ("breathing", "anxiety"):  # the baselines' caches are warmed alike
        plain_search(plain, warm)
        plain_search(unkeyed, warm)
        index.search(warm, exact=True)
    vocab = index.vocabulary()
    results: dict[str, Timings] = {}
    for kind, items in queries.items():
        t = Timings([], [], [], [], ([], [], [], []), [], [], [], [])
        for i, query in enumerate(items):
            exact_rows = 0
            for k in range(4):  # rotate the order, so no run always goes first
                run = (i + k) % 4
                cpu = time.thread_time()
                start = time.perf_counter()
                if run == 0:
                    index.search(query)
                elif run == 1:
                    exact_rows = len(index.search(query, exact=True))
                elif run == 2:
                    plain_search(plain, query)
                else:
                    plain_search(unkeyed, query)
                (t.fuzzy, t.exact, t.plain, t.unkeyed)[run].append(ms(time.perf_counter() - start))
                t.cpu[run].append(ms(time.thread_time() - cpu))
            t.expanded.append(int(exact_rows < 20))
            start = time.perf_counter()
            fuzzy_match = to_match(parse(query), vocab)
            t.expansion.append(ms(time.perf_counter() - start))
            exact_match = to_match(parse(query), None)
            t.matched_exact.append(
                int(plain.execute("SELECT count(*) FROM pages WHERE pages MATCH ?", (exact_match,)).fetchone()[0])
            )
            t.matched_fuzzy.append(
                int(plain.execute("SELECT count(*) FROM pages WHERE pages MATCH ?", (fuzzy_match,)).fetchone()[0])
            )
        results[kind] = t
        print(f"  {kind}: {len(items)} queries done", flush=True)
    index.close()
    plain.close()
    unkeyed.close()
    return results, first


def grow(
    ours_path: Path, plain_path: Path, key: bytes, maker: RecordMaker, count: int
) -> tuple[float, float, int, float, int]:
    """Seconds per record for add_record in its own transaction (sync_index's path), ours and plain;
    then the seconds update_terms takes (the first fuzzy search after a sync) once SYNC_TARGET_RECORDS
    new records (`count` of them one by one, the rest in one transaction) are in, and their pages."""
    index = SearchIndex(ours_path, key)
    plain = plain_open(plain_path)
    pages = int(plain.execute("SELECT count(*) FROM pages").fetchone()[0])
    ours: list[float] = []
    base: list[float] = []
    new_pages = 0
    for i in range(count):
        r = maker.record()
        new_pages += len(r.pages)
        for k in range(2):  # alternate which goes first
            start = time.perf_counter()
            if (i + k) % 2 == 0:
                _add_ours(index, r)
                ours.append(time.perf_counter() - start)
            else:
                _add_plain(plain, r)
                base.append(time.perf_counter() - start)
    rest = [maker.record() for _ in range(max(0, SYNC_TARGET_RECORDS - count))]
    new_pages += sum(len(r.pages) for r in rest)
    index.begin()
    index.add_records([as_index_record(r) for r in rest])
    index.commit()
    start = time.perf_counter()
    index.update_terms()
    terms_s = time.perf_counter() - start
    index.close()
    plain.close()
    return statistics.median(ours), statistics.median(base), pages, terms_s, new_pages


def _add_ours(index: SearchIndex, r: Record) -> None:
    index.begin()
    index.add_record(r.seq, r.record_id, r.client_code, r.session_date, r.record_class, r.pages, r.facts)
    index.commit()


def _add_plain(plain: sqlite3.Connection, r: Record) -> None:
    plain.execute("BEGIN IMMEDIATE")
    plain_add_record(plain, r)
    plain.execute("COMMIT")


# --- sync ---------------------------------------------------------------------------


def fake_recogniser(words: list[str], boxes: dict[str, str]) -> engine.PageRecogniser:
    def recognise(number: int, source: engine.PageSource) -> document.PageText:
        placed = [
            document.Word(w, 90.0, (40 * (i % 12), 30 * (i // 12), 36, 24), (1, 1, i // 12))
            for i, w in enumerate(words)
        ]
        return document.PageText(number, "ok", "", "fake", placed, dict(boxes))

    return recognise


def small_scan(seed: int) -> Image.Image:
    """A 600x200 px page with a few synthetic words on it (unique per seed: ingest skips duplicates)."""
    image = Image.new("L", (600, 200), 255)
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(synth.synthetic_note(seed, sentences=3)):
        draw.text((20, 30 + 45 * row), f"{seed} " + " ".join(line.split()[:6]), fill=30)
    return image


def commit_floor(folder: Path, count: int) -> float:
    """Seconds for `count` one-row transactions on a plain SQLite file in `folder` (what the disk's
    fsyncs cost: sync_index commits once per record)."""
    path = folder / f"floor-{time.monotonic_ns()}.db"
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("CREATE TABLE t (n INTEGER)")
    start = time.perf_counter()
    for n in range(count):
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t VALUES (?)", (n,))
        db.execute("COMMIT")
    seconds = time.perf_counter() - start
    db.close()
    path.unlink()
    return seconds


def sync_bench(work: Path, count: int, ranking: list[str]) -> dict[str, float]:
    from scanarchive.ingest.pipeline import ingest_file

    root = work / "archive"
    Archive.create(root, PASSPHRASE, kdf_seconds=0.05).close()
    with Archive(root) as archive:  # the index exists before the new records arrive (steady state)
        identity = archive.unlock(PASSPHRASE)
        first = sync.open_index(archive, identity)
        sync.sync_index(archive, identity, first)
        first.close()
    drop = work / "drop"
    drop.mkdir()
    text = OcrText(SEED + 10, ranking)
    maker = RecordMaker(text, SEED + 11)
    started = time.perf_counter()
    with Archive(root) as archive:
        for i in range(count):
            client, day, _ = maker.metadata()
            path = drop / f"scan-{i:05d}.png"
            small_scan(i).save(path, dpi=(300, 300))
            boxes = {key: "ticked" for _, key in maker.facts()}
            result = ingest_file(
                archive, path, client=client, session_date=day, recogniser=fake_recogniser(text.page_words(), boxes)
            )
            if len(result.records) != 1 or result.records[0].client_code != client:
                raise SystemExit(f"scan {i} was not filed as one record: {result.records}")
            if (i + 1) % 100 == 0 or i + 1 == count:
                print(f"  sealed {i + 1:>5,} records ({time.perf_counter() - started:.0f} s)", flush=True)
    ingest_s = time.perf_counter() - started

    def decrypt_only() -> float:
        with Archive(root) as archive:
            t0 = time.perf_counter()
            identity = archive.unlock(PASSPHRASE)
            n = sum(len(archive.ocr_pages(identity, r)) for r in archive.catalog.records())
            seconds = time.perf_counter() - t0
        if n != count:
            raise SystemExit(f"decrypted {n} OCR pages, expected {count}")
        return seconds

    before = decrypt_only()
    floor_before = commit_floor(work, count)
    with Archive(root) as archive:
        t0 = time.perf_counter()
        identity = archive.unlock(PASSPHRASE)
        t1 = time.perf_counter()
        index = sync.open_index(archive, identity)
        t2 = time.perf_counter()
        report = sync.sync_index(archive, identity, index)
        t3 = time.perf_counter()
        index.update_terms()  # what the first fuzzy search after the sync does first
        t4 = time.perf_counter()
        hits = index.search("braething", limit=5)
        index.close()
    if report.added != count or report.skipped:
        raise SystemExit(f"sync added {report.added} (expected {count}), skipped {len(report.skipped)}")
    if not hits:
        raise SystemExit("the synced index finds nothing for a common word")
    after = decrypt_only()
    floor_after = commit_floor(work, count)
    return {
        "ingest": ingest_s,
        "unlock": t1 - t0,
        "open": t2 - t1,
        "sync": t3 - t2,
        "total": t3 - t0,
        "terms": t4 - t3,
        "decrypt_before": before,
        "decrypt_after": after,
        "floor_before": floor_before,
        "floor_after": floor_after,
        "index_bytes": float((root / INDEX).stat().st_size),
    }


# --- report ---------------------------------------------------------------------------


def verdict(value: float, target: float, unit: str) -> str:
    if value <= target:
        return f"PASS ({target - value:.1f} {unit} under, {value / target:.2f}x of target)"
    return f"MISS by {value - target:.1f} {unit} ({value / target:.2f}x the target)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=100_000, help="pages in the search index")
    parser.add_argument("--queries", type=int, default=200, help="queries of each kind")
    parser.add_argument("--sync", type=int, default=SYNC_TARGET_RECORDS, help="new records to seal and sync")
    parser.add_argument("--grow", type=int, default=20, help="records added one by one to the full index")
    parser.add_argument(
        "--corpus",
        choices=("zipf", "small"),
        default="zipf",
        help="zipf: ~1,000 general, note and clinical words (default); small: the 237 clinical words alone",
    )
    args = parser.parse_args()
    if args.pages < 1 or args.queries < 2 or args.sync < 1 or args.grow < 1:
        parser.error("--pages, --sync and --grow must be >= 1, --queries >= 2")
    if args.corpus == "zipf":
        ranking, common = zipf_ranking(SEED), list(COMMON)
    else:
        ranking = small_ranking(SEED)
        common = ranking[:10]

    print(
        f"scanarchive search benchmark: {args.pages:,} pages ({args.corpus} corpus, {len(ranking):,} words),"
        f" {args.queries} queries per kind, {args.sync:,} records to sync; SQLCipher {sqlcipher3.sqlite_version}"
        f" vs stdlib sqlite {sqlite3.sqlite_version} (baseline)",
        flush=True,
    )
    key = os.urandom(32)
    with tempfile.TemporaryDirectory(prefix="sa-bench-search-") as tmp:
        work = Path(tmp)
        print("[1/4] building the indexes", flush=True)
        ours_path, plain_path, ours_build, plain_build, pages, maker = build(work, args.pages, key, ranking)
        ours_size, plain_size = ours_path.stat().st_size, plain_path.stat().st_size
        print("[2/4] queries", flush=True)
        results, first = latency(ours_path, plain_path, key, make_queries(args.queries, SEED + 3, ranking, common))
        print(f"[3/4] {args.grow} records added one by one to the {pages:,}-page index", flush=True)
        grow_ours, grow_plain, grow_pages, grow_terms, grow_terms_pages = grow(
            ours_path, plain_path, key, maker, args.grow
        )
        print(f"[4/4] sealing {args.sync:,} records (fake OCR), then unlock + sync", flush=True)
        sync = sync_bench(work, args.sync, ranking)

    print()
    print(
        f"index: {pages:,} pages in {maker.seq:,} records; {first.terms:,} distinct words (OCR noise included);"
        f" corpus {args.corpus}"
    )
    print(
        f"  build (bulk, 2,000-page transactions): encrypted {ours_build:.1f} s, plain baseline {plain_build:.1f} s"
        f" ({ours_build / plain_build:.2f}x)"
    )
    print(
        f"  size per page: encrypted {ours_size / pages:,.0f} B, plain baseline {plain_size / pages:,.0f} B"
        f" ({ours_size / plain_size:.2f}x); index.db {ours_size / 1e6:,.1f} MB"
    )
    print(
        f"  just opened (not in the percentiles): open {first.open_ms:.1f} ms; first query {first.first_ms:.1f} ms;"
        f" then a misspelled one {first.first_fuzzy_ms:.1f} ms (reads the vocabulary tiers it needs);"
        f" opened again, one reading every tier {first.all_tiers_ms:.1f} ms"
    )
    print()
    header = (
        f"{'query':<12}{'run':<10}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}"
        f"{'p95/baseline':>14}{'p95/unkeyed':>13}{'cpu p50':>9}{'cpu p95':>9}{'pages matched p50':>19}{' p95':>9}"
    )
    print(header)
    print("-" * len(header))
    for kind, t in results.items():
        base95, unkeyed95 = pct(t.plain, 95), pct(t.unkeyed, 95)
        rows = (
            ("fuzzy", t.fuzzy, t.cpu[0], t.matched_fuzzy),
            ("exact", t.exact, t.cpu[1], t.matched_exact),
            ("baseline", t.plain, t.cpu[2], t.matched_exact),
            ("unkeyed", t.unkeyed, t.cpu[3], t.matched_exact),
        )
        for name, values, cpu, matched in rows:
            p95 = pct(values, 95)
            vs_base = "" if name == "baseline" else f"{p95 / base95:.2f}x"
            vs_unkeyed = "" if name in ("baseline", "unkeyed") else f"{p95 / unkeyed95:.2f}x"
            print(
                f"{kind:<12}{name:<10}{statistics.median(values):>9.1f}{p95:>9.1f}{max(values):>9.1f}"
                f"{vs_base:>14}{vs_unkeyed:>13}{statistics.median(cpu):>9.1f}{pct(cpu, 95):>9.1f}"
                f"{statistics.median(matched):>19,.0f}{pct([float(m) for m in matched], 95):>9,.0f}"
            )
        print(
            f"{'':<12}(fuzzy phase ran for {sum(t.expanded)}/{len(t.expanded)} queries (fewer exact pages than"
            f" the limit); fuzzy expansion alone: p50 {statistics.median(t.expansion):.1f} ms,"
            f" p95 {pct(t.expansion, 95):.1f} ms)"
        )
    print()
    per_1000 = grow_ours * SYNC_TARGET_RECORDS
    print(
        f"add_record into the {grow_pages:,}-page index, one transaction per record (sync_index's path):"
        f" {grow_ours * 1000:.0f} ms/record; plain baseline {grow_plain * 1000:.0f} ms/record"
        f" ({grow_ours / grow_plain:.2f}x); 1,000 records ~ {per_1000:.0f} s"
    )
    print(
        f"  then counting the words of 1,000 new records ({grow_terms_pages:,} pages) into `terms`"
        f" (update_terms, run by the first fuzzy search after a sync): {grow_terms:.2f} s"
    )
    decrypt = (sync["decrypt_before"] + sync["decrypt_after"]) / 2
    print(
        f"sync of {args.sync:,} new records into a fresh archive's index (records sealed in {sync['ingest']:.0f} s):"
        f" unlock {ms(sync['unlock']):.0f} ms + open_index {ms(sync['open']):.0f} ms + sync_index {sync['sync']:.2f} s"
        f" = {sync['total']:.2f} s; then update_terms {ms(sync['terms']):.0f} ms"
    )
    print(
        f"  baseline, unlock + decrypt the same OCR sections only: {sync['decrypt_before']:.2f} s before,"
        f" {sync['decrypt_after']:.2f} s after; sync is {sync['total'] / decrypt:.2f}x that"
    )
    floor = (sync["floor_before"] + sync["floor_after"]) / 2
    print(
        f"  disk floor, {args.sync:,} one-row SQLite commits in the same folder: {sync['floor_before']:.2f} s before,"
        f" {sync['floor_after']:.2f} s after; sync_index is {sync['sync'] / floor:.2f}x that"
    )
    print(f"  archive index.db after sync: {sync['index_bytes'] / args.sync:,.0f} B per page")
    print("  (unlock here uses kdf_seconds=0.05; an archive made with the default 0.75 s pays ~0.7 s more)")
    print()
    print("targets:")
    for kind, t in results.items():
        note = " (pessimistic class, reported apart)" if kind == "common word" else ""
        for name, values, cpu in (("fuzzy (default)", t.fuzzy, t.cpu[0]), ("exact", t.exact, t.cpu[1])):
            print(
                f"  search p95 <= {P95_TARGET_MS:.0f} ms, {kind}, {name}{note}:"
                f" {verdict(pct(values, 95), P95_TARGET_MS, 'ms')}; CPU p95 {pct(cpu, 95):.1f} ms"
            )
    scale = SYNC_TARGET_RECORDS / args.sync
    note = "" if args.sync == SYNC_TARGET_RECORDS else f" (scaled from {args.sync:,} records)"
    print(
        f"  unlock + sync (+ update_terms) of 1,000 records <= {SYNC_TARGET_S:.0f} s{note}:"
        f" {verdict(sync['unlock'] + sync['open'] + (sync['sync'] + sync['terms']) * scale, SYNC_TARGET_S, 's')}"
    )
    print(
        f"  same, into the {grow_pages:,}-page index (extrapolated from {args.grow} add_records):"
        f" {verdict(sync['unlock'] + sync['open'] + per_1000 + grow_terms, SYNC_TARGET_S, 's')}"
    )


if __name__ == "__main__":
    main()
