"""The only free-form strings that may reach the catalog and the audit log in clear.

Client codes are the practice's own pseudonyms (never a name); tokens name
holds, presets and engines. Both are checked against these patterns before
anything is written, so a name typed by mistake can never be stored.
"""

from __future__ import annotations

import re

CLIENT_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")  # the practice's pseudonyms; never a name
TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")  # hold names, preset ids, account names

# C0 and C1 controls, DEL, and the Unicode bidi overrides/isolates and line separators that can
# make a terminal or an editor show something else than what is there, and lone surrogates
# (a file name that is not UTF-8).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]")


def printable(text: str) -> str:
    """`text` safe to print or write to a log or a note: every control character becomes '?'."""
    return _UNPRINTABLE.sub("?", text)
