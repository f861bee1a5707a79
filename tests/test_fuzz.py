"""Fuzzing (issue 7): hostile bytes and text get no further than scanarchive's typed errors.

Hypothesis property tests over the parsers that read untrusted input: the sealed blob
(crypto.seal), the scan intake (pipeline.read_source, pages.load), the OCR document
(ocr.document.from_json) and the note-sheet QR payload (pages.sheets.parse). The targets and
input strategies are in tests/fuzzkit.py; bench/fuzz.py runs the same targets for many more
iterations. Deterministic (derandomize=True, no example database) and small enough to run
in well under a minute. Every crash the fuzzing found has a plain regression test below.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import segno
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, TiffImagePlugin, TiffTags

from scanarchive.errors import InputRejected, IntegrityError
from scanarchive.ingest import pipeline
from scanarchive.ocr import document
from scanarchive.pages import load, sheets
from tests.kits.fuzzkit import (
    ARCHIVE8,
    SETTINGS,
    SHEET_KEY,
    ScanFile,
    authentic_payload,
    check_intake,
    check_ocr_json,
    check_qr,
    check_seal,
    ocr_documents,
    pdf_file,
    qr_payloads,
    scan_files,
    scan_seeds,
    seal_inputs,
    seal_samples,
)

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,  # fuzzkit's own time limit (SIGALRM) catches a hang
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,  # tmp_path: each example removes its own file
    ],
)


# --- properties -----------------------------------------------------------------------


@settings(FUZZ, max_examples=400)
@given(seal_inputs())
def test_sealed_blob_reader_raises_only_integrity_error(data: bytes) -> None:
    check_seal(data)


def test_sealed_samples_open() -> None:
    for blob, sections in seal_samples():
        assert check_seal(blob) == "opened", sections.keys()


@settings(FUZZ, max_examples=300)
@given(scan_file=scan_files())
def test_scan_intake_loads_or_refuses_with_a_typed_error(scan_file: ScanFile, tmp_path: Path) -> None:
    check_intake(scan_file, tmp_path)


def test_every_seed_scan_loads(tmp_path: Path) -> None:
    """The fuzzer's valid starting files load, so mutations start from what ingest accepts."""
    outcomes = [check_intake(ScanFile(f"seed-{n}-zqxj.scan", data), tmp_path) for n, data in enumerate(scan_seeds())]
    assert outcomes.count("refused: InputRejected") == 1, outcomes  # the BMP, only
    assert {"loaded: png", "loaded: jpeg", "loaded: tiff", "loaded: pdf"} <= set(outcomes)


@settings(FUZZ, max_examples=400)
@given(ocr_documents())
def test_ocr_document_parser_raises_only_integrity_error(data: bytes) -> None:
    check_ocr_json(data)


@settings(FUZZ, max_examples=500)
@given(qr_payloads())
def test_sheet_payload_parser_never_raises(text: str) -> None:
    check_qr(text)


@settings(FUZZ, max_examples=60)
@given(st.text(max_size=40))
def test_any_qr_text_on_a_page_is_read_without_error(text: str) -> None:
    """The whole path from a scanned page: zxing decodes whatever a QR holds, parse judges it."""
    code = sheets.read_page_code(_page_with_qr(f"SA1:{ARCHIVE8}|{text}"), SHEET_KEY, ARCHIVE8)
    assert code.status in (sheets.QrStatus.INVALID, sheets.QrStatus.FOREIGN, sheets.QrStatus.NONE)


def _page_with_qr(text: str) -> Image.Image:
    out = io.BytesIO()
    segno.make(text, error="m", micro=False).save(out, kind="png", scale=6, border=4)
    out.seek(0)
    page = Image.new("L", (900, 700), 255)
    page.paste(Image.open(out).convert("L"), (60, 60))
    return page


# --- regressions: crashes the fuzzing found -----------------------------------------------


def _tiff_stating_resolution(value: float) -> bytes:
    tags = TiffImagePlugin.ImageFileDirectory_v2()
    for tag in (282, 283):  # XResolution, YResolution, stored as doubles (a TIFF may)
        tags[tag] = value
        tags.tagtype[tag] = TiffTags.DOUBLE
    tags[296] = 2  # inches
    out = io.BytesIO()
    Image.new("L", (40, 30), 200).save(out, format="TIFF", tiffinfo=tags)
    return out.getvalue()


@pytest.mark.parametrize("value", [float("inf"), float("nan"), 1e308, -1.0, 0.0])
def test_tiff_with_an_impossible_resolution_loads_with_resolution_unknown(value: float, tmp_path: Path) -> None:
    """Was: OverflowError from load.stated_dpi (infinity), or a 309-digit dpi for the catalog's INTEGER column."""
    data = _tiff_stating_resolution(value)
    scan = load.check(data, SETTINGS)
    [(_, _, dpi)] = list(load.iter_analysis_pages(scan, SETTINGS, 5.0))
    assert dpi is None
    [(_, source)] = list(load.iter_ocr_pages(scan, SETTINGS, 5.0))
    assert Image.open(io.BytesIO(source(str(tmp_path)))).info["dpi"] == pytest.approx((300, 300), abs=0.01)
    assert check_intake(ScanFile("res-zqxj.tif", data), tmp_path) == "loaded: tiff"


@pytest.mark.parametrize(
    ("mediabox", "width"),
    [("0 0 0.0000000000000000000000000000001 5", b"1000"), ("0 0 612 792", b"-5"), ("0 0 612 792", b"0")],
)
def test_pdf_page_image_resolution_is_plausible_or_unknown(mediabox: str, width: bytes) -> None:
    """Was: 720000000000000006931026494944706560 dpi (too large for the catalog), or -1 and 0 dpi."""
    scan = load.check(pdf_file(mediabox, [width]), SETTINGS)
    assert scan.pdf_image_dpi == (None,)


def test_pdf_page_image_resolution_still_measured() -> None:
    assert load.check(pdf_file("0 0 612 792", [b"2550"]), SETTINGS).pdf_image_dpi == (300,)


@pytest.mark.parametrize(
    "text",
    [
        f"SA1:{ARCHIVE8}|C-1|-|P|1|-|é",  # a non-ASCII check value: compare_digest raised TypeError
        f"SA1:{ARCHIVE8}|è||\x11|||´",  # the fuzzer's first find
        f"SA1:{ARCHIVE8}|C-\ud800|-|P|1|-|ABCDEFGHIJ",  # a lone surrogate: UnicodeEncodeError
    ],
)
def test_sheet_payload_with_non_ascii_or_unencodable_text_is_invalid(text: str) -> None:
    assert sheets.parse(text, SHEET_KEY, ARCHIVE8).status is sheets.QrStatus.INVALID


def test_scanned_qr_with_a_non_ascii_check_is_invalid_not_a_crash() -> None:
    """Was: TypeError out of read_page_code, so ingest of such a page failed with an internal error."""
    code = sheets.read_page_code(_page_with_qr(f"SA1:{ARCHIVE8}|C-1|-|P|1|-|é"), SHEET_KEY, ARCHIVE8)
    assert code.status is sheets.QrStatus.INVALID and code.sheet is None


def test_genuine_sheet_payload_still_valid() -> None:
    info = sheets.SheetInfo(ARCHIVE8, "C-0042", "2026-12-01", "progress", 2, "progress@1")
    code = sheets.parse(sheets.encode(info, SHEET_KEY), SHEET_KEY, ARCHIVE8)
    assert code.status is sheets.QrStatus.VALID and code.sheet == info
    assert check_qr(authentic_payload([ARCHIVE8, "C-0042", "-", "T", "1", "-"])) == "VALID"


_OCR = b'{"format":"scanarchive-ocr","version":1,"pages":[{"page":%s,"status":"ok","words":[%s]%s}]}'


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"3", id="document-not-an-object"),  # AttributeError: 'int' object has no attribute 'get'
        pytest.param(b"[]", id="document-a-list"),
        pytest.param(_OCR % (b"1", b"", b',"boxes":[]'), id="boxes-not-an-object"),  # AttributeError (.items)
        pytest.param(_OCR % (b"1e999", b"", b""), id="page-infinite"),  # OverflowError: int(inf)
        pytest.param(_OCR % (b"1", b'["a",1' + b"0" * 400 + b",1,2,3,4,5,6,7]", b""), id="conf-huge"),  # float()
        pytest.param(b"[" * 5000, id="nested-deep"),  # RecursionError from json.loads
    ],
)
def test_ocr_document_that_cannot_be_parsed_is_an_integrity_error(data: bytes) -> None:
    with pytest.raises(IntegrityError):
        document.from_json(data)


def test_intake_messages_never_quote_the_file_name(tmp_path: Path) -> None:
    for data in (b"", b"plain text\n" * 10, b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"%PDF-1.4\n%%EOF\n"):
        path = tmp_path / "Client Jane Doe zqxj.png"
        path.write_bytes(data)
        with pytest.raises(InputRejected) as caught:
            load.check(pipeline.read_source(path), SETTINGS)
        assert "Jane" not in caught.value.message and caught.value.message
