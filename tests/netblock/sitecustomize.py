"""Loaded by every Python subprocess of the test suite (via PYTHONPATH): no network.

It also makes the modules named in SCANARCHIVE_TEST_UNINSTALL (comma-separated)
impossible to find or import, as if they were not installed: the test that an
optional OCR engine can be missing uses it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

from netblock_impl import install

install()


class _Uninstalled:
    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


_names = {n.strip() for n in os.environ.get("SCANARCHIVE_TEST_UNINSTALL", "").split(",") if n.strip()}
if _names:
    sys.meta_path.insert(0, _Uninstalled(_names))
