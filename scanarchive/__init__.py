"""scanarchive: encrypted, searchable, retention-managed archive of scanned handwritten notes."""

from __future__ import annotations

__version__ = "0.2.0"
