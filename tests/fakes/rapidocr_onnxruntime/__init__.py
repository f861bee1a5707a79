"""A faulty stand-in for RapidOCR, for fault injection only (tests/test_ocr_faults.py).

Put first on PYTHONPATH, it replaces the real package in the worker process.
FAKE_RAPIDOCR chooses the fault: hang, crash (the process dies), raise, garbage
(writes a broken answer down the worker's pipe).
"""

from __future__ import annotations

import os
import time
from typing import Any


class RapidOCR:
    def __init__(self, **options: Any) -> None:
        self.mode = os.environ.get("FAKE_RAPIDOCR", "hang")

    def __call__(self, image: Any) -> tuple[Any, Any]:
        if self.mode == "hang":
            time.sleep(600)
        if self.mode == "crash":
            os._exit(9)
        if self.mode == "garbage":
            os.write(1, b"\x00not an answer\n")
            return [], None
        raise RuntimeError("simulated engine failure")
