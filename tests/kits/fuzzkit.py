"""Fuzz targets and input strategies, shared by tests/test_fuzz.py and bench/fuzz.py.

A target takes one generated input and returns when the code under test behaved:
it succeeded, or it raised the typed error its module documents with a plain,
non-empty message. Anything else propagates, and that is a crash: a stray
ValueError/OSError/struct.error, a hang (`Hang`, from a SIGALRM time limit), or
a broken property (AssertionError: say a modified blob that opened).

Targets (what `scanarchive` itself runs on untrusted bytes):

- seal     crypto.seal.read_header / open_section / open_blob: arbitrary bytes and
           mutations of real sealed blobs (record and quarantine layouts), some with
           the header MAC recomputed so the checks after authentication are reached
           too. Only IntegrityError (SealError) may come out; a modified blob never opens.
- intake   what `scanarchive ingest` and the watcher do with a scan file before OCR:
           pipeline.read_source, pages.load.check, then every page through
           load.iter_analysis_pages (Poppler replaced by a stub that always fails,
           which the loader must handle) and load.iter_ocr_pages (image pages are
           converted for OCR). Inputs: arbitrary bytes, magic-prefixed bytes,
           mutations of small valid PNG/JPEG/TIFF/PDF files (PNG chunk CRCs
           sometimes recomputed so the header values are reached), images built
           with odd modes, sizes and resolution tags, and PDFs with odd page boxes
           and image sizes; under many file names. Only a ScanarchiveError may
           come out, with a message that does not quote the file name.
- ocrjson  ocr.document.from_json: the sealed OCR document. Only IntegrityError.
- qr       pages.sheets.parse: the note-sheet QR payload, arbitrary and authentic
           (correct check value). It never raises; VALID only for a genuine payload.

Everything is synthetic and generated here; nothing is read from outside.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import math
import signal
import struct
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from types import FrameType
from unittest import mock

import img2pdf
import pikepdf
from hypothesis import strategies as st
from PIL import Image, ImageDraw, TiffImagePlugin, TiffTags

from scanarchive.config import IngestSettings
from scanarchive.crypto import seal
from scanarchive.errors import IntegrityError, ScanarchiveError
from scanarchive.ingest import pipeline
from scanarchive.ocr import document
from scanarchive.pages import load, poppler, sheets

KEY = bytes(range(32))
RID = uuid.UUID("12345678-1234-5678-1234-567812345678").bytes
SALT = bytes(range(0xA0, 0xB0))
SHEET_KEY = hashlib.sha256(b"fuzz sheet key").digest()
ARCHIVE8 = "3f2a9c1e"
SETTINGS = IngestSettings()  # the defaults `scanarchive ingest` uses
NAME_MARK = "zqxj"  # in every generated file name: no message may quote it
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SEAL_SECONDS = 10.0
INTAKE_SECONDS = 30.0  # a 250-megapixel page legitimately takes seconds; a hang never ends
TEXT_SECONDS = 10.0


# --- hangs ------------------------------------------------------------------------


class Hang(BaseException):
    """The code under test ran past its time limit (a BaseException: no `except Exception` under test eats it)."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise Hang in the main thread after `seconds` (no limit elsewhere: signals need the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(_signum: int, _frame: FrameType | None) -> None:
        raise Hang(f"still running after {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _check_message(exc: ScanarchiveError, name: str = "") -> None:
    assert exc.message.strip(), f"{type(exc).__name__} with an empty message"
    if name:
        assert NAME_MARK not in exc.message and NAME_MARK not in str(exc.hint), "the message quotes the file name"


# --- mutations ----------------------------------------------------------------------

_INTERESTING: tuple[bytes, ...] = (
    b"\x00",
    b"\x01",
    b"\x7f",
    b"\x80",
    b"\xff",
    b"\x00\x00",
    b"\xff\xff",
    b"\x7f\xff",
    b"\x80\x00",
    b"\x00\x00\x00\x00",
    b"\x00\x00\x00\x01",
    b"\x00\x00\xff\xff",
    b"\x00\x01\x00\x00",
    b"\x7f\xff\xff\xff",
    b"\x80\x00\x00\x00",
    b"\xff\xff\xff\xff",
    b"\x00\x00\x00\x00\x00\x00\x00\x00",
    b"\x7f\xff\xff\xff\xff\xff\xff\xff",
    b"\xff\xff\xff\xff\xff\xff\xff\xff",
    b"\x00\x00\x00\x01\x00\x00\x00\x00",
    b"\x7f\xf0\x00\x00\x00\x00\x00\x00",  # +inf as a big-endian double
    b"\x00\x00\x00\x00\x00\x00\xf0\x7f",  # +inf as a little-endian double
    b"\x00\x00\x00\x00\x00\x00\xf8\x7f",  # NaN as a little-endian double
)
_OPS = ("flip", "byte", "interesting", "truncate", "delete", "insert", "duplicate", "splice", "append")


@st.composite
def mutated(
    draw: st.DrawFn,
    seeds: Sequence[bytes],
    fixups: Sequence[Callable[[bytes], bytes]] = (),
    max_ops: int = 4,
) -> bytes:
    """A seed with 1..max_ops byte-level mutations (positions biased to the first 64 bytes: the headers)."""
    data = bytearray(draw(st.sampled_from(seeds)))

    def position(extra: int = 0) -> int:
        top = len(data) - 1 + extra
        if top <= 0:
            return 0
        return draw(st.one_of(st.integers(0, min(top, 63)), st.integers(0, top)))

    for _ in range(draw(st.integers(1, max_ops))):
        op = draw(st.sampled_from(_OPS)) if data else "insert"
        if op == "flip":
            data[position()] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte":
            data[position()] = draw(st.integers(0, 255))
        elif op == "interesting":
            at, value = position(), draw(st.sampled_from(_INTERESTING))
            data[at : at + len(value)] = value
        elif op == "truncate":
            del data[position() :]
        elif op == "delete":
            at = position()
            del data[at : at + draw(st.integers(1, 64))]
        elif op == "insert":
            at = position(extra=1)
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "duplicate":
            start = position()
            block = data[start : start + draw(st.integers(1, 256))]
            at = position(extra=1)
            data[at:at] = block
        elif op == "splice":
            other = draw(st.sampled_from(seeds))
            cut = draw(st.integers(0, len(other)))
            data[position(extra=1) :] = other[cut:]
        else:
            data += draw(st.binary(min_size=1, max_size=64))
    out = bytes(data)
    for fix in fixups:
        if draw(st.booleans()):
            out = fix(out)
    return out


def fix_png_crcs(data: bytes) -> bytes:
    """Recompute every chunk CRC, so a mutated PNG header is parsed rather than refused at the CRC."""
    if not data.startswith(PNG_MAGIC):
        return data
    out = bytearray(data)
    at = len(PNG_MAGIC)
    while at + 12 <= len(out):
        (length,) = struct.unpack_from(">I", out, at)
        end = at + 8 + length
        if end + 4 > len(out):
            break
        struct.pack_into(">I", out, end, zlib.crc32(out[at + 4 : end]) & 0xFFFFFFFF)
        at = end + 4
    return bytes(out)


# --- seal ---------------------------------------------------------------------------


def _noise(size: int, label: bytes) -> bytes:
    """Deterministic incompressible bytes."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(label + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


@cache
def seal_samples() -> tuple[tuple[bytes, dict[str, bytes]], ...]:
    """(blob, its sections): a record, an empty record, a multi-chunk record, a quarantine entry."""
    ocr = document.to_json(
        [document.PageText(1, "ok", "", "tesseract 5.3.0", [document.Word("calm", 91.5, (10, 20, 80, 30), (1, 1, 1))])],
        ["tesseract 5.3.0"],
    )
    layouts: list[dict[str, bytes]] = [
        {"pdf": b"%PDF-1.7\n%%EOF\n", "ocr": ocr},
        {"pdf": b"", "ocr": b""},
        {"pdf": _noise(2 * seal.CHUNK + 5, b"pdf"), "ocr": ocr},
        {"ocr": ocr, "pdf": _noise(seal.CHUNK, b"exact")},  # the reader accepts any order of known kinds
        {"original": b"not an image at all"},
    ]
    return tuple((seal.seal(KEY, RID, sections, SALT), sections) for sections in layouts)


def remac(data: bytes) -> bytes:
    """The header MAC recomputed with the record key, as if whoever changed the header held the key."""
    if len(data) < 41:
        return data
    end = 41 + 9 * data[40]
    if len(data) < end:
        return data
    mac = hmac.new(seal.derive(KEY, data[24:40], "header"), data[:end], hashlib.sha256).digest()
    return data[:end] + mac + data[end + seal.MAC_LEN :]


def seal_inputs() -> st.SearchStrategy[bytes]:
    blobs = [blob for blob, _ in seal_samples()]
    fixed = seal.MAGIC + bytes([seal.VERSION])
    return st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=300).map(lambda tail: fixed + tail),
        st.builds(
            lambda rid, salt, count, table: fixed + rid + salt + bytes([count]) + table,
            st.just(RID) | st.binary(min_size=16, max_size=16),
            st.binary(min_size=16, max_size=16),
            st.integers(0, 255),
            st.binary(max_size=80),
        ).map(remac),
        mutated(blobs),
        mutated(blobs, fixups=(remac,)),
    )


def check_seal(data: bytes) -> str:
    """Parse and open `data` every way a reader does: it fails with IntegrityError, or it is a sealed blob.

    The sample blobs share one record key, id and salt, so a section may open from a spliced or
    re-MACed blob; what must never happen is plaintext that was never sealed, or a blob whose
    genuine header (its MAC unforgeable without the key) opens with any other byte changed.
    """
    samples = seal_samples()
    sealed = {kind: {s[kind] for _, s in samples if kind in s} for kind in seal.SECTION_KINDS}
    genuine = {seal.read_header(io.BytesIO(blob)).raw: blob for blob, _ in samples}
    outcome = "refused"
    with time_limit(SEAL_SECONDS):
        try:
            header = seal.read_header(io.BytesIO(data))
            assert header.total_length >= len(header.raw)
        except IntegrityError as exc:
            _check_message(exc)
        try:
            opened = seal.open_blob(data, KEY, RID)
        except IntegrityError as exc:
            _check_message(exc)
        else:
            assert all(text in sealed[kind] for kind, text in opened.items()), "plaintext that was never sealed"
            head = seal.read_header(io.BytesIO(data)).raw
            assert head not in genuine or data == genuine[head], "a modified blob opened"
            outcome = "opened"
        for kind in seal.SECTION_KINDS:
            try:
                section = seal.open_section(io.BytesIO(data), KEY, RID, kind)
            except IntegrityError as exc:
                _check_message(exc)
            else:
                assert section in sealed[kind], "a section opened to plaintext that was never sealed"
        for key, rid in ((bytes(32), RID), (KEY, bytes(16))):  # another record's key or id: never opens
            try:
                seal.open_blob(data, key, rid)
            except IntegrityError as exc:
                _check_message(exc)
            else:
                raise AssertionError("a blob opened with another record's key or id")
    return outcome


# --- intake -------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanFile:
    name: str
    data: bytes

    def __repr__(self) -> str:
        head = self.data[:64]
        return f"ScanFile(name={self.name!r}, len={len(self.data)}, head={head!r})"


def _picture(size: tuple[int, int], shade: int = 0) -> Image.Image:
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    for n in range(0, size[0], 5):
        draw.line((n, 0, size[0] - n, size[1]), fill=(n * 7 + shade) % 200)
    return image


def _in_mode(image: Image.Image, mode: str) -> Image.Image:
    if mode == "I;16":
        return image.convert("I").convert("I;16")
    if mode == "P":
        return image.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return image.convert(mode)


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def pdf_file(mediabox: str, images: Sequence[bytes] = (), pages: int = 1) -> bytes:
    """A small hand-written PDF (qpdf repairs whatever the xref table gets wrong after a mutation)."""
    kids = " ".join(f"{3 + 2 * n} 0 R" for n in range(pages))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode()]
    for n in range(pages):
        width = images[n % len(images)] if images else b"1"
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [{mediabox}] "
            f"/Resources << /XObject << /Im0 {4 + 2 * n} 0 R >> >> >>".encode()
        )
        objects.append(
            b"<< /Type /XObject /Subtype /Image /Width "
            + width
            + b" /Height 1 /ColorSpace /DeviceGray /BitsPerComponent 8 /Length 1 >>\nstream\nx\nendstream"
        )
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out


@cache
def scan_seeds() -> tuple[bytes, ...]:
    """Small valid scans: every format and colour mode the loader meets, made here."""
    seeds: list[bytes] = []

    def attempt(mode: str, fmt: str, **options: object) -> None:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):  # a mode a format cannot hold: skip
            seeds.append(_encode(_in_mode(_picture((48, 32)), mode), fmt, **options))

    for mode in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"):
        attempt(mode, "PNG", dpi=(300, 300))
    for mode in ("L", "RGB", "CMYK"):
        attempt(mode, "JPEG", quality=80, dpi=(300, 300))
    attempt("RGB", "JPEG", progressive=True, dpi=(72, 72))
    for mode, compression in (
        ("L", "raw"),
        ("RGB", "tiff_lzw"),
        ("1", "group4"),
        ("L", "packbits"),
        ("RGB", "jpeg"),
        ("I;16", "raw"),
        ("F", "raw"),
        ("CMYK", "tiff_deflate"),
    ):
        attempt(mode, "TIFF", compression=compression, dpi=(300, 300))
    attempt("L", "TIFF", big_tiff=True)
    attempt("L", "BMP")  # not a format scanarchive accepts
    pages = [_picture((40, 24), shade) for shade in (0, 60, 120)]
    seeds.append(_encode(pages[0], "TIFF", save_all=True, append_images=pages[1:], compression="tiff_lzw"))
    png = _encode(pages[0], "PNG", dpi=(300, 300))
    jpeg = _encode(pages[1].convert("RGB"), "JPEG", dpi=(300, 300))
    seeds.append(bytes(img2pdf.convert(png)))
    seeds.append(bytes(img2pdf.convert([png, jpeg])))
    seeds.append(pdf_file("0 0 612 792", [b"2550"]))
    blank = pikepdf.new()
    blank.add_blank_page(page_size=(612, 792))
    out = io.BytesIO()
    blank.save(out)
    seeds.append(out.getvalue())
    assert len(seeds) >= 20, "the seed scans could not be made"
    return tuple(seeds)


_NAME_CHARS = st.characters(exclude_categories=["Cs"], exclude_characters="/\x00")
_EXTENSIONS = (
    ".png",
    ".PNG",
    ".jpg",
    ".jpeg",
    ".tif",
    ".tiff",
    ".pdf",
    ".PDF",
    "",
    ".txt",
    ".scan",
    ".part",
    ".pdf.png",
)
FILE_NAMES = st.builds(
    lambda stem, tail, ext: stem + NAME_MARK + tail + ext,
    st.text(_NAME_CHARS, max_size=16),
    st.text(_NAME_CHARS, max_size=6),
    st.sampled_from(_EXTENSIONS),
)

_DPI_VALUES = st.one_of(
    st.sampled_from([0.0, -1.0, 1.0, 72.0, 299.9994, 300.0, 600.0, 1e-300, 1e6, 1e30, 1e308, math.inf, math.nan]),
    st.floats(allow_nan=True, allow_infinity=True),
)


@st.composite
def built_images(draw: st.DrawFn) -> bytes:
    """An image saved by Pillow with odd sizes, modes and resolution tags (TIFF tags may be doubles: inf, NaN)."""
    fmt = draw(st.sampled_from(["PNG", "JPEG", "TIFF"]))
    mode = draw(st.sampled_from(["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I", "I;16", "F"]))
    size = (draw(st.integers(1, 64)), draw(st.integers(1, 64)))
    try:
        image = _in_mode(_picture(size), mode)
        if fmt == "TIFF":
            tags = TiffImagePlugin.ImageFileDirectory_v2()
            value, kind = draw(_DPI_VALUES), draw(st.sampled_from([TiffTags.DOUBLE, TiffTags.RATIONAL, TiffTags.FLOAT]))
            for tag in (282, 283):  # XResolution, YResolution
                tags[tag] = value if draw(st.integers(0, 3)) else draw(_DPI_VALUES)
                tags.tagtype[tag] = kind
            tags[296] = draw(st.sampled_from([2, 2, 3, 1, 0, 7]))  # ResolutionUnit: inch, cm, none, invalid
            frames = draw(st.integers(1, 3))
            return _encode(image, "TIFF", tiffinfo=tags, save_all=frames > 1, append_images=[image] * (frames - 1))
        dpi = (draw(st.integers(0, 100_000)), draw(st.integers(0, 100_000)))
        return _encode(image, fmt, dpi=dpi)
    except (OSError, ValueError, KeyError, TypeError, OverflowError, struct.error, ZeroDivisionError):
        return _encode(_picture(size), "PNG")  # a combination Pillow cannot write: any valid image will do


_PDF_NUMBERS = st.one_of(
    st.sampled_from(
        ["0", "612", "792", "-612", "0.0001", "0.0000000000000000000000000000001", "1" + "0" * 400, "1e5", "nan", "-0"]
    ),
    st.integers(-(10**6), 10**6).map(str),
    st.floats(-1e9, 1e9).map(lambda v: f"{v:.6f}"),
)


@st.composite
def built_pdfs(draw: st.DrawFn) -> bytes:
    box = " ".join(draw(st.lists(_PDF_NUMBERS, min_size=0, max_size=5)))
    widths = draw(
        st.lists(
            st.sampled_from([b"0", b"1", b"-5", b"1.5", b"2550", b"99999999999999999999", b"/Name", b"()"]),
            min_size=1,
            max_size=3,
        )
    )
    return pdf_file(box, widths, pages=draw(st.integers(1, 3)))


def scan_files() -> st.SearchStrategy[ScanFile]:
    seeds = scan_seeds()
    magics = [magic for magic, _ in load._MAGIC] + [b"%PDF-1.4\n", b"%PDF-"]
    data = st.one_of(
        st.binary(max_size=2048),
        st.builds(lambda magic, tail: magic + tail, st.sampled_from(magics), st.binary(max_size=512)),
        st.sampled_from(seeds),
        mutated(seeds, fixups=(fix_png_crcs,)),
        mutated(seeds, fixups=(fix_png_crcs,), max_ops=12),
        built_images(),
        built_pdfs(),
        built_pdfs().flatmap(lambda pdf: mutated([pdf])),
    )
    return st.builds(ScanFile, FILE_NAMES, data)


def _no_render(*_args: object, **_kwargs: object) -> bytes:
    raise poppler.PageRenderError("page rendering is not part of this check")


def check_intake(scan_file: ScanFile, folder: Path) -> str:
    """Read and check one scan as ingest does, and walk every page; rejection must be a ScanarchiveError."""
    path = folder / scan_file.name
    path.write_bytes(scan_file.data)
    try:
        with time_limit(INTAKE_SECONDS), mock.patch.object(poppler, "render_page", _no_render):
            try:
                scan = load.check(pipeline.read_source(path), SETTINGS)
                assert 1 <= scan.page_count <= SETTINGS.max_pages
                for _number, image, dpi in load.iter_analysis_pages(scan, SETTINGS, 5.0):
                    assert dpi is None or 1 < dpi <= load.MAX_DPI, f"implausible resolution {dpi}"
                    if image is not None:
                        image.close()
                for _number, source in load.iter_ocr_pages(scan, SETTINGS, 5.0):
                    if scan.kind != "pdf":  # PDF pages are rendered by Poppler: stubbed out here
                        assert source(str(folder)).startswith(PNG_MAGIC)
            except ScanarchiveError as exc:
                _check_message(exc, scan_file.name)
                return f"refused: {type(exc).__name__}"
    finally:
        path.unlink(missing_ok=True)
    return f"loaded: {scan.kind}"


# --- OCR document -------------------------------------------------------------------


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(10**300, 10**400),
    st.floats(),
    st.text(max_size=10),
)
JSON_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_WORD = st.one_of(
    st.tuples(st.text(max_size=8), st.floats(), *[st.integers(-5, 5000)] * 7).map(list),
    st.lists(JSON_VALUES, max_size=10),
    JSON_VALUES,
)
_PAGE = st.one_of(
    st.fixed_dictionaries(
        {
            "page": st.integers(1, 500) | JSON_VALUES,
            "status": st.sampled_from(["ok", "failed", "timeout"]) | JSON_VALUES,
            "words": st.lists(_WORD, max_size=4) | JSON_VALUES,
        },
        optional={
            "reason": st.text(max_size=10) | JSON_VALUES,
            "engine": st.text(max_size=10) | JSON_VALUES,
            "boxes": st.dictionaries(st.text(max_size=8), st.sampled_from(["ticked", "empty", "unclear"]))
            | JSON_VALUES,
        },
    ),
    JSON_VALUES,
)
_DOCUMENT = st.one_of(
    st.fixed_dictionaries(
        {
            "format": st.just(document.OCR_FORMAT) | st.text(max_size=16),
            "version": st.sampled_from([document.OCR_VERSION, 1.0, True, "1", 2, 0]),
            "pages": st.lists(_PAGE, max_size=3) | JSON_VALUES,
        },
        optional={"engines": JSON_VALUES},
    ),
    JSON_VALUES,
)


@cache
def ocr_seeds() -> tuple[bytes, ...]:
    words = [
        document.Word("calm", 91.5, (10, 20, 80, 30), (1, 1, 1)),
        document.Word("sleep", 0.0, (1, 2, 3, 4), (1, 1, 2)),
    ]
    pages = [
        document.PageText(1, "ok", "", "tesseract 5.3.0", words, {"risk.si_denied": "ticked", "topic.sleep": "empty"}),
        document.PageText(2, "timeout", "OCR took longer than 180 s", "tesseract 5.3.0"),
    ]
    return (document.to_json(pages, ["tesseract 5.3.0"]), document.to_json([], []))


def ocr_documents() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=400),
        st.text(max_size=200).map(lambda text: text.encode("utf-8", "surrogatepass")),
        _DOCUMENT.map(lambda doc: json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")),
        mutated(ocr_seeds(), max_ops=6),
        st.builds(
            lambda opener, depth: opener * depth,
            st.sampled_from([b"[", b'{"a":', b'{"format":"scanarchive-ocr","version":1,"pages":[']),
            st.integers(1, 5_000),
        ),
    )


def check_ocr_json(data: bytes) -> str:
    with time_limit(TEXT_SECONDS):
        try:
            pages = document.from_json(data)
        except IntegrityError as exc:
            _check_message(exc)
            return "refused"
    assert isinstance(pages, list) and all(isinstance(p, document.PageText) for p in pages)
    return "parsed"


# --- sheet QR payload -------------------------------------------------------------------

_FIELD = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ["", "-", "|", "P", "T", "1", "0", "-1", "C-0042", "20261201", "2026120", "99999999", "progress@1"]
    ),
)
_SAFE_FIELD = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=12),
    st.sampled_from(["", "-", "P", "T", "X", "1", "0", "-1", " 2", "٣", "C-0042", "20261201", "20260230", "2026"]),
)


def authentic_payload(fields: Sequence[str]) -> str:
    """A payload whose check value is right: what only a sheet printed for this archive carries."""
    body = sheets.PREFIX + "|".join(fields)
    return f"{body}|{sheets.check_value(SHEET_KEY, body)}"


def qr_payloads() -> st.SearchStrategy[str]:
    fields = st.lists(_FIELD, min_size=0, max_size=9)
    return st.one_of(
        st.text(max_size=80),
        st.builds(lambda parts: sheets.PREFIX + "|".join(parts), fields),
        st.builds(lambda parts: sheets.PREFIX + "|".join([ARCHIVE8, *parts]), fields),
        st.builds(
            lambda parts, check: sheets.PREFIX + "|".join([ARCHIVE8, *parts, check]),
            st.lists(_FIELD, min_size=5, max_size=5),
            st.text(max_size=12),
        ),
        st.builds(
            lambda parts: authentic_payload([ARCHIVE8, *parts]),
            st.lists(_SAFE_FIELD, min_size=5, max_size=5),
        ),
        st.builds(
            lambda client, day, cls, sheet, template: authentic_payload([ARCHIVE8, client, day, cls, sheet, template]),
            _SAFE_FIELD,
            _SAFE_FIELD,
            st.sampled_from(["P", "T", "X", "", "p"]),
            st.integers(-5, 10**5).map(str) | _SAFE_FIELD,
            st.sampled_from(["-", "progress@1", ""]) | _SAFE_FIELD,
        ),
    )


def check_qr(text: str) -> str:
    with time_limit(TEXT_SECONDS):
        code = sheets.parse(text, SHEET_KEY, ARCHIVE8)
    assert isinstance(code, sheets.PageCode) and isinstance(code.status, sheets.QrStatus)
    if code.status is sheets.QrStatus.VALID:
        assert code.sheet is not None and code.sheet.archive8 == ARCHIVE8
        body, check = text.rsplit("|", 1)
        assert check == sheets.check_value(SHEET_KEY, body), "VALID without the right check value"
        assert code.sheet.record_class in sheets.CLASS_CODES
        assert code.sheet.session_date is None or date.fromisoformat(code.sheet.session_date)
        assert isinstance(code.sheet.sheet, int)
    else:
        assert code.sheet is None
    return code.status.name


# --- registry -------------------------------------------------------------------------


def _seal(value: object, _folder: Path) -> str:
    assert isinstance(value, bytes)
    return check_seal(value)


def _intake(value: object, folder: Path) -> str:
    assert isinstance(value, ScanFile)
    return check_intake(value, folder)


def _ocr_json(value: object, _folder: Path) -> str:
    assert isinstance(value, bytes)
    return check_ocr_json(value)


def _qr(value: object, _folder: Path) -> str:
    assert isinstance(value, str)
    return check_qr(value)


@dataclass(frozen=True)
class Target:
    name: str
    inputs: Callable[[], st.SearchStrategy[object]]
    check: Callable[[object, Path], str]  # (input, a private scratch folder) -> outcome label


TARGETS: dict[str, Target] = {
    "seal": Target("seal", seal_inputs, _seal),
    "intake": Target("intake", scan_files, _intake),
    "ocrjson": Target("ocrjson", ocr_documents, _ocr_json),
    "qr": Target("qr", qr_payloads, _qr),
}
