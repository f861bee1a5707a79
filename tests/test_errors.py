"""The error table in docs/errors.md and the exception classes agree; the handler never leaks a traceback."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from scanarchive import errors

DOC = (Path(__file__).resolve().parent.parent / "docs" / "errors.md").read_text()


@pytest.mark.parametrize(("name", "code"), sorted(errors.EXIT_CODES.items()))
def test_every_error_type_is_documented_with_its_code(name: str, code: int) -> None:
    if name == "ScanarchiveError":
        assert re.search(rf"\|\s*{code}\s*\|.*`{name}`", DOC)
    else:
        assert f"## `{name}`: exit code {code}" in DOC


def test_handler_prints_reason_and_hint_without_traceback() -> None:
    out = io.StringIO()
    code = errors.report(errors.InputRejected("the file is empty"), stream=out)
    assert code == 5
    assert out.getvalue().startswith("scanarchive: error: the file is empty\n  what to do: ")
    assert "Traceback" not in out.getvalue()


def test_unknown_exception_is_exit_70_and_does_not_quote_its_message() -> None:
    out = io.StringIO()
    code = errors.report(ValueError("rumination in the parser"), stream=out)
    assert code == 70
    assert "rumination" not in out.getvalue() and "ValueError" in out.getvalue()
