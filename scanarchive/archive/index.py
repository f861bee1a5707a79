"""index.db: the SQLCipher full-text index (FTS5), derived from the sealed OCR text.

Its random 32-byte key is wrapped to the recipient in the catalog; only
interactive commands (which hold the identity) can open it. It can be
deleted and rebuilt from the sealed payloads at any time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlcipher3

from scanarchive.archive.query import parse, to_match
from scanarchive.errors import IntegrityError, TransientError

SCHEMA_VERSION = "2"  # the index is derived data: another version is dropped and rebuilt
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS docs (record_id TEXT PRIMARY KEY, seq INTEGER NOT NULL,"
    " client_code TEXT, session_date TEXT, record_class TEXT, indexed INTEGER NOT NULL DEFAULT 1)",
    "CREATE TABLE IF NOT EXISTS facts (record_id TEXT NOT NULL, page INTEGER NOT NULL, key TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS facts_key ON facts(key, record_id)",
    "CREATE INDEX IF NOT EXISTS facts_record ON facts(record_id)",
    # FTS5 cannot index its UNINDEXED record_id column: this maps a record to its rows, so that
    # replacing or forgetting a record deletes by rowid instead of scanning every page.
    "CREATE TABLE IF NOT EXISTS page_rows (row INTEGER PRIMARY KEY, record_id TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS page_rows_record ON page_rows(record_id)",
    "CREATE VIRTUAL TABLE IF NOT EXISTS pages USING fts5("
    " body, record_id UNINDEXED, page UNINDEXED, tokenize = 'unicode61 remove_diacritics 2')",
    "CREATE VIRTUAL TABLE IF NOT EXISTS vocab USING fts5vocab(pages, 'row')",
)


@dataclass(frozen=True)
class Hit:
    record_id: str
    client_code: str | None
    session_date: str | None
    record_class: str | None
    page: int
    snippet: str
    rank: float  # bm25: lower is better (0 when only tick boxes were asked for)
    facts: tuple[str, ...] = ()  # ticked boxes of the record


def build_match(query: str) -> str:
    """Exact whole words, `word*` prefixes and "phrases", all required (see archive/query.py)."""
    return to_match(parse(query), None)


class SearchIndex:
    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        self._vocabulary: list[str] | None = None
        self.db = sqlcipher3.connect(str(path), timeout=30, isolation_level=None)
        self.db.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
        try:
            self.db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            self.db.execute("PRAGMA secure_delete = ON")
            self._migrate()
        except sqlcipher3.DatabaseError as exc:
            self.db.close()
            raise IntegrityError(f"the search index {path.name} does not open with its key ({exc})") from exc

    def _migrate(self) -> None:
        has_meta = self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone()
        version = self.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() if has_meta else None
        if has_meta and (version is None or version[0] != SCHEMA_VERSION):
            for (name,) in self.db.execute(
                "SELECT name FROM sqlite_master WHERE type IN ('table') AND name NOT LIKE 'sqlite_%'"
                " AND name NOT LIKE 'pages_%'"
            ).fetchall():
                self.db.execute(f'DROP TABLE IF EXISTS "{name}"')
        for statement in SCHEMA:
            self.db.execute(statement)
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,))

    def close(self) -> None:
        self.db.close()

    def _drop_rows(self, record_id: str) -> None:
        rows = [int(r[0]) for r in self.db.execute("SELECT row FROM page_rows WHERE record_id = ?", (record_id,))]
        for row in rows:
            self.db.execute("DELETE FROM pages WHERE rowid = ?", (row,))
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
        pages: list[tuple[int, str]] | None,
        facts: list[tuple[int, str]] | None = None,
    ) -> None:
        """Add one record's pages (inside the caller's transaction) and advance last_seq.

        pages=None marks a record that could not be opened (damaged): it is
        retried at every sync until it opens, e.g. after a restore.
        """
        self._drop_rows(record_id)
        self.db.executemany(
            "INSERT INTO facts(record_id, page, key) VALUES (?,?,?)", [(record_id, p, k) for p, k in facts or []]
        )
        self.db.execute(
            "INSERT OR REPLACE INTO docs(record_id, seq, client_code, session_date, record_class, indexed)"
            " VALUES (?,?,?,?,?,?)",
            (record_id, seq, client_code, session_date, record_class, 0 if pages is None else 1),
        )
        for page, text in pages or []:
            cursor = self.db.execute("INSERT INTO pages(body, record_id, page) VALUES (?,?,?)", (text, record_id, page))
            self.db.execute("INSERT INTO page_rows(row, record_id) VALUES (?,?)", (cursor.lastrowid, record_id))
        self.db.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('last_seq', ?)", (str(max(seq, self.last_seq())),)
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
        """Drop every destroyed record's rows (secure_delete overwrites them); returns how many."""
        gone = [str(r[0]) for r in self.db.execute("SELECT record_id FROM docs") if r[0] not in live]
        self.begin()
        for record_id in gone:
            self._drop_rows(record_id)
            self.db.execute("DELETE FROM docs WHERE record_id = ?", (record_id,))
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
        """Ranked hits: pages matching every word exactly first, then fuzzy matches, each by bm25."""
        terms = parse(query)
        params: list[object]
        if not terms and has:  # tick boxes only: one hit per record
            sql = "SELECT d.record_id, d.client_code, d.session_date, d.record_class FROM docs d WHERE 1 = 1"
            params = []
        else:
            # rank first (cheap), then make snippets for the few rows shown (snippets cost per row)
            sql = "SELECT p.rowid FROM pages p JOIN docs d ON d.record_id = p.record_id WHERE pages MATCH ?"
            params = [to_match(terms, None if exact else self.vocabulary())]
        sql, params = _filters(sql, params, has, client, since, until)
        if not terms:
            sql += " ORDER BY d.session_date DESC LIMIT ?"
            rows = self.db.execute(sql, [*params, limit]).fetchall()
            return [Hit(r[0], r[1], r[2], r[3], 1, "", 0.0, self.facts_of(r[0])) for r in rows]
        sql += " ORDER BY bm25(pages) LIMIT ?"
        top = [int(r[0]) for r in self.db.execute(sql, [*params, limit * 4 if not exact else limit]).fetchall()]
        if not top:
            return []
        marks = ",".join("?" * len(top))
        rows = self.db.execute(
            "SELECT p.record_id, d.client_code, d.session_date, d.record_class, p.page,"  # noqa: S608 - marks are "?"
            " snippet(pages, 0, '[', ']', '…', 10), bm25(pages), p.rowid"
            f" FROM pages p JOIN docs d ON d.record_id = p.record_id WHERE pages MATCH ? AND p.rowid IN ({marks})",
            [params[0], *top],
        ).fetchall()
        exact_rows: set[int] = set(top)
        if not exact:  # exact matches outrank fuzzy ones
            exact_rows = {
                int(r[0])
                for r in self.db.execute(
                    f"SELECT rowid FROM pages WHERE pages MATCH ? AND rowid IN ({marks})",  # noqa: S608 - only "?" marks
                    [to_match(terms, None), *top],
                )
            }
        rows.sort(key=lambda r: (int(r[7]) not in exact_rows, float(r[6]), r[2] or ""))
        return [
            Hit(r[0], r[1], r[2], r[3], int(r[4]), str(r[5]).replace("\n", " "), float(r[6]), self.facts_of(r[0]))
            for r in rows[:limit]
        ]

    def vocabulary(self) -> list[str]:
        """Every word in the index (for fuzzy expansion); read once per open index."""
        if self._vocabulary is None:
            self._vocabulary = [str(r[0]) for r in self.db.execute("SELECT term FROM vocab")]
        return self._vocabulary

    def facts_of(self, record_id: str) -> tuple[str, ...]:
        rows = self.db.execute("SELECT DISTINCT key FROM facts WHERE record_id = ? ORDER BY key", (record_id,))
        return tuple(str(r[0]) for r in rows)


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
