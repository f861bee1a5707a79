"""Reading notes back (needs the identity): search and show, each audited here.

The search index is opened with the OCR engines' dictionary, so fuzzy search
tells a misreading from another real word. What is audited is that a read
happened, which record or how many results — never the query text.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from typing import TypeVar

from scanarchive.archive import sync
from scanarchive.archive.catalog import RecordRow
from scanarchive.archive.index import Hit, SearchIndex
from scanarchive.archive.layout import Archive
from scanarchive.crypto import keys
from scanarchive.ocr import tesseract

T = TypeVar("T")


def known_words(archive: Archive) -> Callable[[], Container[str]]:
    """The dictionary of the configured OCR languages, built on first use."""
    languages = archive.config.ingest.ocr_languages
    return lambda: tesseract.dictionary(languages)


def searched(archive: Archive, identity: keys.Identity, ask: Callable[[SearchIndex], T]) -> tuple[sync.SyncReport, T]:
    """Sync the index and ask it one question (not audited: for callers that audit themselves)."""
    return sync.searched(archive, identity, ask, known_words(archive))


def search(
    archive: Archive,
    identity: keys.Identity,
    query: str,
    *,
    client: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int = 20,
    has: tuple[str, ...] = (),
    exact: bool = False,
) -> tuple[sync.SyncReport, list[Hit]]:
    """Ranked hits for a query; audited with the number of results (and the client filter)."""
    report, hits = searched(
        archive,
        identity,
        lambda index: index.search(query, client=client, since=since, until=until, limit=limit, has=has, exact=exact),
    )
    archive.audit("search", results=len(hits), **({"client": client} if client else {}))
    return report, hits


def show(archive: Archive, identity: keys.Identity, record: RecordRow) -> bytes:
    """A record's PDF, decrypted in memory; audited."""
    data = archive.open_section(identity, record, "pdf")
    archive.audit("show", record=record.id, **({"client": record.client_code} if record.client_code else {}))
    return data
