"""How hard a new passphrase is to guess, estimated by zxcvbn (Dropbox's estimator).

The identity is only as strong as its passphrase: scrypt makes each guess cost
about a second, but "a" or "password123" is found in the first few guesses
whatever the cost. A new passphrase (init, passwd) must reach zxcvbn's score 3
("safely unguessable: moderate protection from an offline slow-hash scenario",
10^8 guesses or more). Neither the passphrase nor any part of it ever appears
in a message.
"""

from __future__ import annotations

import importlib
from typing import Any, Final

from scanarchive.errors import UsageError

MIN_SCORE: Final = 3
_LOOKED_AT: Final = 100  # zxcvbn's time grows with length; past 100 characters a passphrase is long enough


def check_new(passphrase: str) -> None:
    """Refuse a new passphrase that is easy to guess (UsageError, nothing written)."""
    # Loaded here, not at import: its dictionaries are ~13 MB of memory that the watcher and every ingest,
    # which never set a passphrase, would otherwise carry (bench/memory.py sums the whole process tree).
    estimate: Any = importlib.import_module("zxcvbn").zxcvbn
    result = estimate(passphrase[:_LOOKED_AT])
    if int(result["score"]) >= MIN_SCORE:
        return
    warning = str(result["feedback"].get("warning") or "").rstrip(".")
    why = f" ({warning.lower()})" if warning else ""
    raise UsageError(
        f"that passphrase is too easy to guess{why}; nothing was changed",
        hint="Use four or more random words, e.g. picked from a dictionary with dice; write them down and keep "
        "the paper somewhere safe.",
    )
