"""The only free-form strings that may reach the catalog and the audit log in clear.

Client codes are the practice's own pseudonyms (never a name); tokens name
holds, presets and engines. Both are checked against these patterns before
anything is written, so a name typed by mistake can never be stored.
"""

from __future__ import annotations

import re

CLIENT_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")  # the practice's pseudonyms; never a name
TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")  # hold names, preset ids, account names
