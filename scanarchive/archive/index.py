"""index.db: the SQLCipher full-text index (FTS5), derived from the sealed OCR text.

Its random 32-byte key is wrapped to the recipient in the catalog; only
interactive commands (which hold the identity) can open it. It can be
deleted and rebuilt from the sealed payloads at any time.

Searching costs in proportion to the pages that match (bm25 is computed for
each), so the ranking statement touches only the FTS5 index and its docsize
table: which record a page belongs to is in `page_rows`, read only for the
rows shown, or when a filter needs it. Fuzzy expansion reads the words from
`terms` (kept up to date as pages come and go) instead of scanning the whole
FTS5 index, and runs only when the exact words fill fewer than `limit` rows.

Each page has two columns: `body`, the OCR's first reading (snippets come from
it, and the fuzzy vocabulary), and `alts`, the other readings the recogniser
found likely for its words (ocr/merge.py). A search ranks the pages whose first
reading holds every word first, then the pages that match only with other
readings, then (fuzzy) pages whose first reading holds words near them.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlcipher3

from scanarchive.archive.query import Vocabulary, parse, to_match
from scanarchive.errors import IntegrityError, TransientError

SCHEMA_VERSION = "4"  # the index is derived data: another version is dropped and rebuilt (4: `alts`)
TOKENIZE = "unicode61 remove_diacritics 2"
FEW_PAGES = 5_000  # filters passed by at most this many pages are listed first (see _scope)
CACHE_KIB = 32_000  # page cache (decrypted pages) per connection; SQLCipher's default is 8,000 KiB
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS docs (record_id TEXT PRIMARY KEY, seq INTEGER NOT NULL,"
    " client_code TEXT, session_date TEXT, record_class TEXT, indexed INTEGER NOT NULL DEFAULT 1)",
    "CREATE INDEX IF NOT EXISTS docs_client ON docs(client_code, session_date)",
    "CREATE TABLE IF NOT EXISTS facts (record_id TEXT NOT NULL, page INTEGER NOT NULL, key TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS facts_key ON facts(key, record_id)",
    "CREATE INDEX IF NOT EXISTS facts_record ON facts(record_id)",
    # pages.rowid -> its record and page: ranking never reads the page text, and replacing or
    # forgetting a record deletes its pages by rowid
    "CREATE TABLE IF NOT EXISTS page_rows (row INTEGER PRIMARY KEY, record_id TEXT NOT NULL, page INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS page_rows_record ON page_rows(record_id)",
    # body: the first reading; alts: the words' other readings (searchable, never shown)
    f"CREATE VIRTUAL TABLE IF NOT EXISTS pages USING fts5(body, alts, tokenize = '{TOKENIZE}')",
    # every word of the pages' first readings and on how many pages it is: the vocabulary of fuzzy expansion
    "CREATE TABLE IF NOT EXISTS terms (term TEXT PRIMARY KEY, pages INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS terms_pages ON terms(pages)",
    "CREATE VIRTUAL TABLE IF NOT EXISTS vocab USING fts5vocab(pages, 'col')",
)
# Per connection, in memory (temp_store = MEMORY): tokenizes pages being added or removed with
# the same tokenizer as `pages`, to count their words into `terms`.
SCRATCH = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.scratch USING fts5(body, content = '', detail = none,"
    f" tokenize = '{TOKENIZE}')",
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.scratch_vocab USING fts5vocab(temp, scratch, 'row')",
)
SNIPPET = "snippet(pages, 0, '[', ']', '…', 10)"  # from the first reading only
ALTS_WEIGHT = 0.3  # bm25 weight of a match in another reading (a first reading's is 1)
RANK = f"bm25(pages, 1.0, {ALTS_WEIGHT})"
FIRST = "{body} : "  # an FTS5 column filter: a match in the first reading only


@dataclass(frozen=True)
class Hit:
    record_id: str
    client_code: str | None
    session_date: str | None
    record_class: str | None
    page: int
    snippet: str
    rank: float  # bm25: lower is better (0 when no words were given, only filters)
    facts: tuple[str, ...] = ()  # ticked boxes of the record


@dataclass(frozen=True)
class IndexRecord:
    """One record as add_records takes it. pages=None: it could not be opened (damaged)."""

    seq: int
    record_id: str
    client_code: str | None
    session_date: str | None
    record_class: str
    # (page, first reading) or (page, first reading, other readings: PageText.alternatives)
    pages: Sequence[tuple[int, str] | tuple[int, str, str]] | None
    facts: Sequence[tuple[int, str]] = ()


def build_match(query: str) -> str:
    """Exact whole words, `word*` prefixes and "phrases", all required (see archive/query.py)."""
    return to_match(parse(query), None)


class SearchIndex:
    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        self._vocabulary: Vocabulary | None = None
        # The OCR language's dictionary, for fuzzy expansion (set by Archive.open_index; none by default).
        self.known_words: Callable[[], Container[str]] | None = None
        self.db = sqlcipher3.connect(str(path), timeout=30, isolation_level=None)
        self.db.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
        try:
            self.db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            self.db.execute("PRAGMA secure_delete = ON")
            self.db.execute("PRAGMA temp_store = MEMORY")  # sorters and scratch never reach the disk in clear
            self.db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            self._migrate()
        except sqlcipher3.DatabaseError as exc:
            self.db.close()
            raise IntegrityError(f"the search index {path.name} does not open with its key ({exc})") from exc
        except BaseException:
            self.db.close()
            raise

    def _schema(self) -> tuple[list[str], str | None]:
        """The index's tables (not FTS5's own) and its schema version."""
        tables = [
            str(r[0])
            for r in self.db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
                " AND name NOT LIKE 'pages\\_%' ESCAPE '\\'"  # FTS5's own tables go with `pages`
            )
        ]
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() if "meta" in tables else None
        return tables, str(row[0]) if row else None

    def _migrate(self) -> None:
        if self._schema()[1] == SCHEMA_VERSION:
            for statement in SCHEMA:
                self.db.execute(statement)
            return
        # new, or another version (or none: a half-made index of an older scanarchive): drop
        # everything and start again in one transaction, so that a crash leaves either the old
        # index or the new empty one; the next sync adds every record again
        self.begin()
        try:
            tables, version = self._schema()  # again, under the write lock
            if version != SCHEMA_VERSION:
                for name in tables:
                    self.db.execute(f'DROP TABLE IF EXISTS "{name}"')
            for statement in SCHEMA:
                self.db.execute(statement)
            self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,))
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def close(self) -> None:
        self.db.close()

    def _count_terms(self, bodies: Iterable[str], sign: int) -> None:
        """Add (sign 1) or remove (sign -1) these pages' words to/from `terms`."""
        for statement in SCRATCH:  # temp tables: gone with a rolled back transaction that made them
            self.db.execute(statement)
        self.db.executemany("INSERT INTO temp.scratch(body) VALUES (?)", ((body,) for body in bodies))
        if sign > 0:
            self.db.execute(
                "INSERT INTO terms(term, pages) SELECT term, doc FROM temp.scratch_vocab WHERE true"
                " ON CONFLICT(term) DO UPDATE SET pages = pages + excluded.pages"
            )
        else:
            counts = self.db.execute("SELECT doc, term FROM temp.scratch_vocab").fetchall()
            self.db.executemany("UPDATE terms SET pages = pages - ? WHERE term = ?", counts)
            self.db.executemany("DELETE FROM terms WHERE term = ? AND pages <= 0", [(t,) for _, t in counts])
        self.db.execute("INSERT INTO temp.scratch(scratch) VALUES ('delete-all')")

    def _terms_upto(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'terms_upto'").fetchone()
        return int(row[0]) if row else 0

    def update_terms(self) -> None:
        """Count the words of the pages added since the last count into `terms`, in one transaction.

        Adding a record does not: its ~150 words are spread over the whole `terms` table, and
        updating them at each record's commit would rewrite (and journal) ~1 MB per record. The
        first fuzzy search after a sync, or the end of a bulk load, counts them all at once."""
        (top,) = self.db.execute("SELECT max(row) FROM page_rows").fetchone()
        if top is None or top <= self._terms_upto():
            return
        self.begin()
        try:
            upto = self._terms_upto()  # again, under the write lock: another process may have done it
            pending, total = self.db.execute(
                "SELECT count(*) FILTER (WHERE row > ?), count(*) FROM page_rows", (upto,)
            ).fetchone()
            if pending * 16 > total:  # many new pages (a rebuild, a bulk load): FTS5's word list is quicker
                self.db.execute("DELETE FROM terms")
                self.db.execute("INSERT INTO terms(term, pages) SELECT term, doc FROM vocab WHERE col = 'body'")
            elif pending:
                self._count_terms(
                    (str(r[0]) for r in self.db.execute("SELECT body FROM pages WHERE rowid > ?", (upto,))), 1
                )
            self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('terms_upto', ?)", (str(max(top, upto)),))
        except BaseException:
            self.rollback()
            raise
        self.commit()
        self._vocabulary = None

    def _drop_rows(self, record_ids: Sequence[str]) -> None:
        rows: list[int] = []
        for record_id in record_ids:
            rows += [int(r[0]) for r in self.db.execute("SELECT row FROM page_rows WHERE record_id = ?", (record_id,))]
        if rows:
            upto = self._terms_upto()  # pages after it were never counted into `terms`
            counted = [row for row in rows if row <= upto]
            bodies = [
                str(self.db.execute("SELECT body FROM pages WHERE rowid = ?", (n,)).fetchone()[0]) for n in counted
            ]
            if bodies:
                self._count_terms(bodies, -1)
            self.db.executemany("DELETE FROM pages WHERE rowid = ?", [(row,) for row in rows])
            self._vocabulary = None
        for record_id in record_ids:
            self.db.execute("DELETE FROM page_rows WHERE record_id = ?", (record_id,))
            self.db.execute("DELETE FROM facts WHERE record_id = ?", (record_id,))

    def last_seq(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()
        return int(row[0]) if row else 0

    def begin(self) -> None:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlcipher3.OperationalError as exc:
            raise TransientError("the search index is busy (another scanarchive command is using it)") from exc

    def commit(self) -> None:
        self.db.execute("COMMIT")

    def rollback(self) -> None:
        self.db.execute("ROLLBACK")

    def add_record(
        self,
        seq: int,
        record_id: str,
        client_code: str | None,
        session_date: str | None,
        record_class: str,
        pages: Sequence[tuple[int, str] | tuple[int, str, str]] | None,
        facts: list[tuple[int, str]] | None = None,
    ) -> None:
        """Add one record's pages (inside the caller's transaction) and advance last_seq.

        pages=None marks a record that could not be opened (damaged): it is
        retried at every sync until it opens, e.g. after a restore.
        """
        self.add_records([IndexRecord(seq, record_id, client_code, session_date, record_class, pages, facts or ())])

    def add_records(self, records: Sequence[IndexRecord]) -> None:
        """add_record for many records at once (inside the caller's transaction): a rebuild or bulk load."""
        if not records:
            return
        self._drop_rows([r.record_id for r in records])
        self.db.executemany(
            "INSERT INTO facts(record_id, page, key) VALUES (?,?,?)",
            [(r.record_id, p, k) for r in records for p, k in r.facts],
        )
        self.db.executemany(
            "INSERT OR REPLACE INTO docs(record_id, seq, client_code, session_date, record_class, indexed)"
            " VALUES (?,?,?,?,?,?)",
            [
                (r.record_id, r.seq, r.client_code, r.session_date, r.record_class, 0 if r.pages is None else 1)
                for r in records
            ],
        )
        # new rowids follow every page ever counted into `terms` (see update_terms)
        row = max(self.db.execute("SELECT max(row) FROM page_rows").fetchone()[0] or 0, self._terms_upto())
        new: list[tuple[int, str, int, str, str]] = []
        for r in records:
            for page, text, *others in r.pages or ():
                row += 1
                new.append((row, r.record_id, page, text, others[0] if others else ""))
        self.db.executemany(
            "INSERT INTO pages(rowid, body, alts) VALUES (?,?,?)", [(n, text, alts) for n, _, _, text, alts in new]
        )
        self.db.executemany(
            "INSERT INTO page_rows(row, record_id, page) VALUES (?,?,?)", [(n, rid, page) for n, rid, page, _, _ in new]
        )
        self._vocabulary = None
        self.db.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('last_seq', ?)",
            (str(max(max(r.seq for r in records), self.last_seq())),),
        )

    def last_change(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'last_change'").fetchone()
        return int(row[0]) if row else 0

    def refile(
        self, record_id: str, client_code: str | None, session_date: str | None, record_class: str, change_seq: int
    ) -> None:
        """A record was filed by hand: its searchable metadata follows (in one statement each)."""
        self.db.execute(
            "UPDATE docs SET client_code = ?, session_date = ?, record_class = ? WHERE record_id = ?",
            (client_code, session_date, record_class, record_id),
        )
        self.db.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('last_change', ?)",
            (str(max(change_seq, self.last_change())),),
        )

    def purge_seq(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'purge_seq'").fetchone()
        return int(row[0]) if row else 0

    def forget(self, live: set[str]) -> int:
        """Drop every destroyed record's rows and words (secure_delete overwrites them); returns how many."""
        gone = [str(r[0]) for r in self.db.execute("SELECT record_id FROM docs") if r[0] not in live]
        self.begin()
        self._drop_rows(gone)
        self.db.executemany("DELETE FROM docs WHERE record_id = ?", [(record_id,) for record_id in gone])
        self.commit()
        return len(gone)

    def set_purge_seq(self, purge_seq: int) -> None:
        """Recorded only after the re-key: a crash before it means forget and re-key run again."""
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('purge_seq', ?)", (str(purge_seq),))

    def rekey(self, key: bytes) -> None:
        """Compact, then re-encrypt every page under a new key: copies made before are unreadable
        once the old key is gone."""
        self.db.execute("INSERT INTO pages(pages) VALUES ('optimize')")
        self.db.execute("VACUUM")
        self.db.execute(f"PRAGMA rekey = \"x'{key.hex()}'\"")

    def unindexed(self) -> list[str]:
        """Records seen but not readable at an earlier sync."""
        return [str(r[0]) for r in self.db.execute("SELECT record_id FROM docs WHERE indexed = 0 ORDER BY seq")]

    def search(
        self,
        query: str,
        *,
        client: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 20,
        has: tuple[str, ...] = (),
        exact: bool = False,
    ) -> list[Hit]:
        """Ranked pages: those whose first reading holds every word exactly first, by bm25, then those that
        match only with the words' other readings, then (unless exact) those whose first reading matches only
        with fuzzy expansion, each by bm25; ties: the page indexed last first."""
        terms = parse(query)
        if not terms and (has or client is not None or since is not None or until is not None):
            # no words, only filters (a client's notes, a date range, ticked boxes): one hit per
            # record, newest session first (undated last)
            sql, params = _filters(
                "SELECT d.record_id, d.client_code, d.session_date, d.record_class FROM docs d WHERE 1 = 1",
                [],
                has,
                client,
                since,
                until,
            )
            rows = self.db.execute(
                sql + " ORDER BY d.session_date DESC, d.seq DESC LIMIT ?", [*params, limit]
            ).fetchall()
            facts = self._facts([str(r[0]) for r in rows])
            return [Hit(r[0], r[1], r[2], r[3], 1, "", 0.0, facts.get(r[0], ())) for r in rows]
        exact_match = to_match(terms, None)  # raises UsageError for a query without words
        first = f"{FIRST}({exact_match})"
        scope = self._scope(has, client, since, until)
        found = [(exact_match, self._rank(first, limit, scope))]
        if len(found[0][1]) < limit:  # pages matching only with other readings (none left out: there are none)
            only = f"({exact_match}) NOT {first}" if found[0][1] else exact_match
            found.append((exact_match, self._rank(only, limit - len(found[0][1]), scope)))
        so_far = sum(len(ranked) for _, ranked in found)
        if not exact and so_far < limit:
            fuzzy_match = to_match(terms, self.vocabulary())
            if fuzzy_match != exact_match:  # pages whose first reading matches only through other words
                fuzzy_first = f"{FIRST}({fuzzy_match})"
                # (with no exact page at all, there is nothing to leave out)
                only = f"{fuzzy_first} NOT ({exact_match})" if so_far else fuzzy_first
                found.append((fuzzy_match, self._rank(only, limit - so_far, scope)))
        hits: list[Hit] = []
        for match, ranked in found:
            hits += self._hits(match, ranked)
        return hits

    def _scope(
        self, has: tuple[str, ...], client: str | None, since: str | None, until: str | None
    ) -> tuple[str, str, list[object]]:
        """FROM and WHERE for _rank's filters. bm25 is computed only for the pages that pass them,
        but each matching page is checked: against a list of the pages that pass when they are
        few (a client's notes), else by looking up its record."""
        where, params = _filters("", [], has, client, since, until)
        if not where:
            return "pages p", "", []
        # the SQL is made of fixed text; the values are "?" parameters
        passing = "SELECT r.row FROM docs d JOIN page_rows r ON r.record_id = d.record_id WHERE 1 = 1" + where  # noqa: S608
        (count,) = self.db.execute(f"SELECT count(*) FROM ({passing} LIMIT {FEW_PAGES + 1})", params).fetchone()  # noqa: S608
        if count <= FEW_PAGES:  # "+": a membership test, not a rowid look-up (which would redo bm25's set-up)
            return "pages p", f" AND +p.rowid IN ({passing})", params
        return "pages p JOIN page_rows r ON r.row = p.rowid JOIN docs d ON d.record_id = r.record_id", where, params

    def _rank(self, match: str, limit: int, scope: tuple[str, str, list[object]]) -> list[tuple[int, float]]:
        """(rowid, bm25) of the best `limit` matching pages. Without filters only FTS5's index and
        docsize are read: bm25 costs ~1 µs for each matching page."""
        tables, where, params = scope
        sql = (
            f"SELECT p.rowid, {RANK} FROM {tables} WHERE pages MATCH ?{where}"  # noqa: S608 - only "?" params
            f" ORDER BY {RANK}, p.rowid DESC LIMIT ?"
        )
        return [(int(r[0]), float(r[1])) for r in self.db.execute(sql, [match, *params, limit])]

    def _hits(self, match: str, ranked: list[tuple[int, float]]) -> list[Hit]:
        """Snippets and record fields, for the ranked rows only (a snippet reads and re-tokenizes the page)."""
        if not ranked:
            return []
        rows = [row for row, _ in ranked]
        marks = ",".join("?" * len(rows))
        snippets = {
            int(r[0]): str(r[1]).replace("\n", " ")
            for r in self.db.execute(
                f"SELECT rowid, {SNIPPET} FROM pages WHERE pages MATCH ? AND +rowid IN ({marks})",  # noqa: S608 - "?" marks
                [match, *rows],
            )
        }
        fields = {
            int(r[0]): r[1:]
            for r in self.db.execute(
                "SELECT r.row, r.record_id, d.client_code, d.session_date, d.record_class, r.page"  # noqa: S608 - "?" marks
                f" FROM page_rows r JOIN docs d ON d.record_id = r.record_id WHERE r.row IN ({marks})",
                rows,
            )
        }
        facts = self._facts([str(f[0]) for f in fields.values()])
        return [
            Hit(f[0], f[1], f[2], f[3], int(f[4]), snippets.get(row, ""), rank, facts.get(f[0], ()))
            for row, rank in ranked
            if (f := fields.get(row)) is not None
        ]

    def vocabulary(self) -> Vocabulary:
        """The index's words (for fuzzy expansion), read lazily from `terms`."""
        if self._vocabulary is None:
            self.update_terms()
            self._vocabulary = Vocabulary(self._tier_words, self._pages_of, self.known_words)
        return self._vocabulary

    def _tier_words(self, floor: int, ceiling: int | None) -> list[str]:
        # one string per tier: 80,000 words cost ~40 % of the time as one row each
        if ceiling is None:
            row = self.db.execute("SELECT group_concat(term, ' ') FROM terms WHERE pages >= ?", (floor,)).fetchone()
        else:
            row = self.db.execute(
                "SELECT group_concat(term, ' ') FROM terms WHERE pages >= ? AND pages < ?", (floor, ceiling)
            ).fetchone()
        return str(row[0]).split(" ") if row and row[0] else []

    def _pages_of(self, words: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for at in range(0, len(words), 500):
            chunk = words[at : at + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                (str(t), int(n))
                for t, n in self.db.execute(f"SELECT term, pages FROM terms WHERE term IN ({marks})", chunk)  # noqa: S608
            )
        return found

    def facts_of(self, record_id: str) -> tuple[str, ...]:
        return self._facts([record_id]).get(record_id, ())

    def _facts(self, record_ids: list[str]) -> dict[str, tuple[str, ...]]:
        """Each record's distinct ticked boxes, sorted."""
        wanted = sorted(set(record_ids))
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        found: dict[str, list[str]] = {}
        for record_id, key in self.db.execute(
            f"SELECT DISTINCT record_id, key FROM facts WHERE record_id IN ({marks}) ORDER BY record_id, key",  # noqa: S608
            wanted,
        ):
            found.setdefault(str(record_id), []).append(str(key))
        return {record_id: tuple(keys) for record_id, keys in found.items()}


def _filters(
    sql: str, params: list[object], has: tuple[str, ...], client: str | None, since: str | None, until: str | None
) -> tuple[str, list[object]]:
    for key in has:
        sql += " AND d.record_id IN (SELECT record_id FROM facts WHERE key = ?)"
        params.append(key)
    if client is not None:
        sql += " AND d.client_code = ?"
        params.append(client)
    if since is not None:
        sql += " AND d.session_date >= ?"
        params.append(since)
    if until is not None:
        sql += " AND d.session_date <= ?"
        params.append(until)
    return sql, params
