"""Sealed objects: what a wrapped key is bound to.

Every key that is wrapped to the recipient is wrapped with a context naming
what it opens, so a wrapped key copied to another row fails to unwrap
(docs/format.md §4). All contexts are defined here, side by side.
"""

from __future__ import annotations

import uuid


def record_context(record_id: str) -> bytes:
    """What a record key is wrapped with (binds the wrapped key to its record)."""
    return b"record:" + uuid.UUID(record_id).bytes


def quarantine_context(entry_id: str) -> bytes:
    """What a quarantined scan's key is wrapped with."""
    return b"quarantine:" + uuid.UUID(entry_id).bytes


def index_context(generation: int) -> bytes:
    """What the search index key of one generation is wrapped with."""
    return b"index:" + str(generation).encode()
