"""Scan quality checks per page: resolution, blank pages, skew and contrast.

The point is the last line of the output: either every page is legible and
the paper may be shredded, or the exact pages to scan again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image, ImageFilter

MIN_DPI = 150
GOOD_DPI = 300
BLANK_CONTRAST = 16  # grey levels darker than the paper that count as ink (low: faint pencil is never "blank")
BLANK_MAX_INK_PIXELS = 30  # at the analysis scale (~150 dpi): fewer ink pixels than this = blank
LOW_CONTRAST = 60  # below this the writing is too faint to trust the scan
SKEW_WARN_DEGREES = 3.0
ANALYSIS_LONG_SIDE = 1700  # about 150 dpi for a letter page


@dataclass
class PageQc:
    page: int  # 1-based position in the scanned file
    dpi: int | None
    blank: bool = False
    contrast: int = 255
    skew: float | None = None  # degrees, from the sheet code's orientation when there is one
    problems: list[str] = field(default_factory=list)  # reasons to rescan
    warnings: list[str] = field(default_factory=list)

    @property
    def legible(self) -> bool:
        return not self.problems


def check_page(page: Image.Image, number: int, dpi: int | None, orientation: int | None = None) -> PageQc:
    gray = page.convert("L")
    scale = ANALYSIS_LONG_SIDE / max(gray.size)
    if scale < 1:
        gray = gray.resize((max(1, round(gray.width * scale)), max(1, round(gray.height * scale))))
    smooth = gray.filter(ImageFilter.MedianFilter(3))  # scanner speckle is not ink
    histogram = smooth.histogram()
    total = sum(histogram)
    background = _percentile(histogram, total, 0.5)  # the paper
    darkest = _percentile(histogram, total, 0.001)  # the strongest ink (darkest 0.1 % of the page)
    qc = PageQc(number, dpi, contrast=max(0, background - darkest))
    # Blank only when there is (almost) no ink at all: a faint page is "low contrast", never dropped,
    # and a single short word (hundreds of ink pixels at this scale) keeps a page.
    ink_pixels = sum(histogram[: max(0, background - BLANK_CONTRAST)])
    qc.blank = ink_pixels < BLANK_MAX_INK_PIXELS
    if dpi is not None and dpi < GOOD_DPI:
        qc.warnings.append(f"scanned at {dpi} dpi; 300 dpi reads better")
    if dpi is None:
        qc.warnings.append("the file does not say its resolution")
    if not qc.blank and qc.contrast < LOW_CONTRAST:
        qc.problems.append("very low contrast (faint or washed out)")
    if orientation is not None:
        skew = ((orientation + 45) % 90) - 45
        qc.skew = float(skew)
        if abs(skew) >= SKEW_WARN_DEGREES:
            qc.warnings.append(f"skewed by about {abs(skew):.0f}°")
    return qc


def _percentile(histogram: list[int], total: int, share: float) -> int:
    running = 0
    for level, count in enumerate(histogram):
        running += count
        if running >= share * total:
            return level
    return 255


def summary(pages: list[PageQc], kept: int) -> str:
    """The verdict line a clinician acts on."""
    rescan = [p for p in pages if not p.blank and not p.legible]
    if not rescan:
        return f"verified; all {kept} page{'s' if kept != 1 else ''} legible — the paper may be shredded"
    listed = "; ".join(f"page {p.page}: {', '.join(p.problems)}" for p in rescan)
    return f"verified, but rescan before shredding — {listed}"
