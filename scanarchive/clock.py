"""Timestamps as the catalog, the audit log and certificates store them."""

from __future__ import annotations

from datetime import UTC, datetime


def now_utc() -> str:
    """Now, in UTC, to the second (ISO 8601)."""
    return datetime.now(UTC).isoformat(timespec="seconds")
