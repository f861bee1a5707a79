"""Sniff a scan by its magic bytes, enforce limits, and yield its pages for OCR.

Everything works on the bytes read once from the source, so what is checked,
OCR'd, sealed and hashed is exactly the same data. Every rejection is an
InputRejected with a reason a clinician can act on.
"""

from __future__ import annotations

import functools
import io
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pikepdf
from PIL import Image, ImageOps, UnidentifiedImageError

from scanarchive.config import IngestSettings
from scanarchive.errors import InputRejected
from scanarchive.pages import poppler

MAX_SIDE = 32767  # Tesseract refuses larger images
OCR_DPI = 300
MAX_DPI = 100_000  # a stated resolution above this is no scan's (and would not fit the catalog): unknown
# Pillow's own default until ingest applies the configured limit; set at import
# so that every process that loads this module has a limit (OCRmyPDF: 250 MP).
Image.MAX_IMAGE_PIXELS = 250_000_000

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),  # BigTIFF
    (b"MM\x00+", "tiff"),
)


@dataclass(frozen=True)
class Scan:
    """A checked scan: its kind, bytes and page count."""

    kind: str  # "pdf" | "png" | "jpeg" | "tiff"
    data: bytes
    page_count: int
    pdf_page_sizes: tuple[tuple[float, float], ...] = ()  # points (1/72 in), PDFs only
    pdf_image_dpi: tuple[int | None, ...] = ()  # resolution of each PDF page's scanned image, if it has one


def sniff(data: bytes) -> str:
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if b"%PDF-" in data[:1024]:
        return "pdf"
    if not data:
        raise InputRejected("the file is empty (0 bytes): the scan failed or was not copied completely")
    head = data[:4096]
    try:
        head.decode("utf-8")
        looks_text = all(c >= 0x20 or c in b"\t\r\n" for c in head)
    except UnicodeDecodeError:
        looks_text = False
    if looks_text:
        raise InputRejected("the file is text, not a scanned image, whatever its name says")
    raise InputRejected("the file is not a format scanarchive accepts (PDF, TIFF, PNG or JPEG)")


def check(data: bytes, settings: IngestSettings) -> Scan:
    """Refuse what cannot be archived; return the scan with its page count."""
    if len(data) > settings.max_file_mb * 1024 * 1024:
        raise InputRejected(f"the file is larger than the limit of {settings.max_file_mb} MB (ingest.max_file_mb)")
    kind = sniff(data)
    dpis: tuple[int | None, ...] = ()
    if kind == "pdf":
        sizes, dpis = _pdf_page_sizes(data, settings)
        pages = len(sizes)
    else:
        sizes, pages = (), _image_page_count(data, settings)
    if pages > settings.max_pages:
        raise InputRejected(f"the file has {pages} pages; the limit is {settings.max_pages} (ingest.max_pages)")
    return Scan(kind, data, pages, sizes, dpis)


def _pdf_page_sizes(
    data: bytes, settings: IngestSettings
) -> tuple[tuple[tuple[float, float], ...], tuple[int | None, ...]]:
    try:
        with pikepdf.open(io.BytesIO(data)) as pdf:
            count = len(pdf.pages)
            if count > settings.max_pages:
                raise InputRejected(f"the file has {count} pages; the limit is {settings.max_pages} (ingest.max_pages)")
            sizes, dpis = [], []
            for page in pdf.pages:
                box = [float(v) for v in page.mediabox]
                if not all(math.isfinite(v) for v in box):
                    raise InputRejected("the PDF is damaged: a page has an impossible size")
                sizes.append((abs(box[2] - box[0]), abs(box[3] - box[1])))
                dpis.append(_scanned_dpi(page, sizes[-1][0]))
    except InputRejected:
        raise
    except pikepdf.PasswordError as exc:
        raise InputRejected(
            "the PDF is password-protected, so it cannot be read",
            hint="Scan the note again without a password; the archive encrypts it anyway.",
        ) from exc
    except Exception as exc:  # qpdf raises several types on hostile input; all mean "damaged"
        raise InputRejected("the PDF is damaged and cannot be read") from exc
    if count == 0:
        raise InputRejected("the PDF has no pages")
    return tuple(sizes), tuple(dpis)


def _scanned_dpi(page: pikepdf.Page, width_pt: float) -> int | None:
    """The resolution of the page's largest image, if the page is a scan (else None)."""
    try:
        widths = [int(image.Width) for image in page.get_images().values()]
    except Exception:  # an odd image dictionary only means "resolution unknown"
        return None
    if not widths or width_pt <= 0:
        return None
    return _plausible_dpi(max(widths) / (width_pt / 72))


def _plausible_dpi(value: float) -> int | None:
    """A resolution as a whole number; None when it is not finite or no scan's (0, negative, absurdly large)."""
    if not math.isfinite(value):
        return None
    dpi = round(value)
    return dpi if 1 < dpi <= MAX_DPI else None


ANALYSIS_DPI = 150


def iter_analysis_pages(
    scan: Scan, settings: IngestSettings, timeout: float
) -> Iterator[tuple[int, Image.Image | None, int | None]]:
    """(page number, image or None if it cannot be rendered, scan resolution), one page at a time,
    for the sheet-code and quality checks."""
    if scan.kind == "pdf":
        for number, (width_pt, height_pt) in enumerate(scan.pdf_page_sizes, start=1):
            area_in2 = max(width_pt * height_pt / (72 * 72), 1e-6)
            dpi = max(10, min(ANALYSIS_DPI, int((settings.max_megapixels * 1_000_000 / area_in2) ** 0.5)))
            image: Image.Image | None
            try:
                image = poppler.render_image(scan.data, number, dpi, timeout=timeout)
            except poppler.PageRenderError:
                image = None  # kept as a page (never taken for blank); OCR will flag it
            yield number, image, scan.pdf_image_dpi[number - 1] if scan.pdf_image_dpi else None
        return
    for number, frame in enumerate(iter_image_pages(scan.data, settings), start=1):
        yield number, frame, stated_dpi(frame)


def stated_dpi(frame: Image.Image) -> int | None:
    """The resolution the image file states (PNG stores pixels per metre: 299.9994 -> 300)."""
    raw = frame.info.get("dpi")
    if not isinstance(raw, tuple) or not raw:
        return None
    try:
        return _plausible_dpi(float(raw[0]))
    except (TypeError, ValueError, OverflowError):
        return None


def _open_image(data: bytes, settings: IngestSettings) -> Image.Image:
    Image.MAX_IMAGE_PIXELS = settings.max_megapixels * 1_000_000
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputRejected(
            f"the image claims more than {settings.max_megapixels} megapixels: it is not a normal scan "
            "(possibly a 'decompression bomb')"
        ) from exc
    except UnidentifiedImageError as exc:
        raise InputRejected("the image is damaged: its header cannot be read") from exc
    except Exception as exc:  # Pillow's parsers raise many types on hostile input; all mean "damaged"
        raise InputRejected("the image is damaged and cannot be read") from exc


def _check_frame(frame: Image.Image, settings: IngestSettings, number: int) -> None:
    width, height = frame.size
    where = f"page {number}" if number > 1 else "the image"
    if width < 1 or height < 1:
        raise InputRejected(f"{where} has no pixels ({width}×{height})")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise InputRejected(f"{where} is {width}×{height} pixels; the largest side allowed is {MAX_SIDE}")
    if width * height > settings.max_megapixels * 1_000_000:
        raise InputRejected(
            f"{where} has more than {settings.max_megapixels} megapixels (possibly a 'decompression bomb')"
        )


def _image_page_count(data: bytes, settings: IngestSettings) -> int:
    """Decode every frame fully, so truncation is found now and not halfway through OCR."""
    count = 0
    for _ in iter_image_pages(data, settings):
        count += 1
        if count > settings.max_pages:
            break
    return count


def iter_image_pages(data: bytes, settings: IngestSettings) -> Iterator[Image.Image]:
    image = _open_image(data, settings)
    number = 0
    try:
        while True:
            number += 1
            _check_frame(image, settings, number)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    warnings.simplefilter("error", Image.DecompressionBombWarning)
                    image.load()
                    frame = image.copy()
            except Exception as exc:  # any parser failure on this frame means it is damaged
                where = f"page {number}" if number > 1 else "the image"
                raise InputRejected(f"{where} is damaged or truncated and cannot be read completely") from exc
            yield plain_mode(frame)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    image.seek(number)
            except EOFError:
                return
            except Exception as exc:
                raise InputRejected(f"page {number + 1} is damaged and cannot be read") from exc
    finally:
        image.close()


def plain_mode(frame: Image.Image) -> Image.Image:
    """A frame in a mode every later step can convert: Pillow cannot turn CIELAB (LAB) into RGB or
    grey, so a LAB scan is kept as its lightness channel (found by the peer corpora: Pillow's
    hopper.Lab.tif crashed the page look)."""
    if frame.mode == "LAB":
        info = dict(frame.info)
        frame = frame.getchannel("L")
        frame.info.update(info)
    return frame


def ocr_ready(frame: Image.Image) -> Image.Image:
    """Grayscale copy for OCR only (the archived image is never altered)."""
    if frame.mode in ("RGBA", "LA", "P"):
        frame = frame.convert("RGBA")
        background = Image.new("RGBA", frame.size, (255, 255, 255, 255))
        frame = Image.alpha_composite(background, frame)
    gray = ImageOps.grayscale(frame) if frame.mode != "L" else frame
    return gray


PageSource = Callable[[str], bytes]  # (private temp dir) -> PNG bytes of one page


def iter_ocr_pages(
    scan: Scan,
    settings: IngestSettings,
    timeout: float,
    only: set[int] | None = None,
    turn: dict[int, int] | None = None,
) -> Iterator[tuple[int, PageSource]]:
    """(page number, how to get its PNG for OCR) for every page (or those in `only`), lazily.

    `turn` gives, per page, the degrees a page is rotated (from its sheet code): the
    OCR copy is turned upright, the archived image never is.

    Image frames are decoded here, in order (TIFF frames must be read in
    sequence); PDF pages are rendered by the worker that calls the source, so
    a page that fails to render fails alone.
    """
    if scan.kind == "pdf":
        budget = settings.max_megapixels * 1_000_000
        for number, (width_pt, height_pt) in enumerate(scan.pdf_page_sizes, start=1):
            # Lower the resolution for huge pages so the raster stays within the pixel limit.
            if only is not None and number not in only:
                continue
            area_in2 = max(width_pt * height_pt / (72 * 72), 1e-6)
            dpi = max(10, min(OCR_DPI, int((budget / area_in2) ** 0.5)))
            angle = (turn or {}).get(number, 0)
            yield number, functools.partial(_render_pdf_page, scan.data, number, dpi, timeout, angle)
        return
    for number, frame in enumerate(iter_image_pages(scan.data, settings), start=1):
        if only is not None and number not in only:
            continue
        dpi = frame.info.get("dpi", (OCR_DPI, OCR_DPI))
        out = io.BytesIO()
        upright(ocr_ready(frame), (turn or {}).get(number, 0)).save(
            out, format="PNG", compress_level=1, dpi=_clean_dpi(dpi)
        )
        png = out.getvalue()
        yield number, lambda _tmp, png=png: png  # type: ignore[misc]


def _render_pdf_page(pdf: bytes, number: int, dpi: int, timeout: float, angle: int, tmpdir: str) -> bytes:
    png = poppler.render_page(pdf, number, dpi, timeout=timeout, cwd=tmpdir)
    if not angle:
        return png
    out = io.BytesIO()
    upright(Image.open(io.BytesIO(png)), angle).save(out, format="PNG", compress_level=1, dpi=(dpi, dpi))
    return out.getvalue()


def upright(image: Image.Image, angle: int) -> Image.Image:
    """Turn an OCR copy by the sheet code's orientation (degrees, counter-clockwise)."""
    angle %= 360
    if angle == 0:
        return image
    if angle in (90, 180, 270):
        return image.rotate(angle, expand=True)
    return image.rotate(angle, expand=True, fillcolor=255, resample=Image.Resampling.BILINEAR)


def _clean_dpi(dpi: object) -> tuple[int, int]:
    if not isinstance(dpi, tuple) or len(dpi) != 2:
        return (OCR_DPI, OCR_DPI)
    try:
        xi, yi = round(float(dpi[0])), round(float(dpi[1]))
    except (TypeError, ValueError, OverflowError):  # NaN, infinity: a hostile TIFF can state either
        return (OCR_DPI, OCR_DPI)
    if not (50 <= xi <= 2400 and 50 <= yi <= 2400):
        return (OCR_DPI, OCR_DPI)
    return (xi, yi)
