"""Synthetic "scanned handwritten session notes" for the demo, tests and benchmarks.

EVERYTHING this module produces is SYNTHETIC.  The sentences are assembled
deterministically from a small built-in vocabulary by a seeded pseudo-random
generator; they never contain, and are never derived from, real client data.
The "scans" are rendered with handwriting-style TrueType fonts onto blank
paper, then rotated, blurred and noised to look like a flatbed scan.

Design notes
------------
* Determinism: the same arguments always give the same lines and the same
  pixels (on the same Pillow/FreeType build).  Noise uses ``random.Random``
  (never ``Image.effect_noise``, whose C ``rand()`` is not seedable).
* Privacy tests grep archive files for the words of a note, so the vocabulary
  avoids generic technical words that show up in schemas or configuration
  (see :data:`AVOIDED_WORDS`) and has only words of 5+ letters (a 4-letter
  word turns up by chance in megabytes of ciphertext far too often).
* No numpy: noise is a Gaussian look-up table applied with ``Image.point`` to
  seeded random bytes, then added with ``ImageChops.add``.  A full 300 dpi
  8.5 x 5.5 in page renders in well under a second.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from pathlib import Path
from statistics import NormalDist
from typing import Final

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

__all__ = [
    "AVOIDED_WORDS",
    "DEFAULT_FONT_PT",
    "HANDWRITING_FONTS",
    "LEGIBLE_FONT",
    "SCAN_FORMATS",
    "available_fonts",
    "default_font",
    "make_scan_set",
    "note_words",
    "render_page",
    "synthetic_note",
    "vocabulary",
    "word_recall",
    "wrap_lines",
    "write_scan",
]

# ---------------------------------------------------------------------------
# Fonts
# ---------------------------------------------------------------------------

HANDWRITING_FONTS: Final[tuple[str, ...]] = (
    "/usr/share/fonts/truetype/fifthhorseman/dkg.ttf",
    "/usr/share/fonts/truetype/breip/Breip.ttf",
    "/usr/share/fonts/truetype/femkeklaver/femkeklaver.ttf",
    "/usr/share/fonts/truetype/humor-sans/Humor-Sans.ttf",
)

#: The handwriting font Tesseract 5.3 reads best.  Measured (300 dpi, share of
#: words of 5+ letters returned exactly, 18/22/26 pt, clean and scan-degraded):
#: Humor Sans 94-100 %, Breip 55-74 %, femkeklaver 62-71 %, Dkg 35-45 %.
LEGIBLE_FONT: Final[Path] = Path("/usr/share/fonts/truetype/humor-sans/Humor-Sans.ttf")
#: Point size for :data:`LEGIBLE_FONT`: 18/20/22 pt are tied within ~1 point
#: (96.5-97.3 % over 40 noisy/blurred/skewed pages each); 20 pt fits 4
#: sentences on an 8.5 x 5.5 in page.
DEFAULT_FONT_PT: Final[float] = 20.0


def available_fonts() -> list[Path]:
    """Return the paths in :data:`HANDWRITING_FONTS` that exist on this machine."""
    return [Path(p) for p in HANDWRITING_FONTS if Path(p).is_file()]


def default_font() -> Path | None:
    """Best installed handwriting font: :data:`LEGIBLE_FONT`, else any installed one.

    Returns ``None`` when no handwriting font is installed; rendering then
    falls back to Pillow's bundled default font.
    """
    if LEGIBLE_FONT.is_file():
        return LEGIBLE_FONT
    fonts = available_fonts()
    return fonts[0] if fonts else None


FontT = ImageFont.FreeTypeFont | ImageFont.ImageFont | ImageFont.TransposedFont


def _load_font(font: Path | None, px: int) -> FontT:
    path = font if font is not None else default_font()
    if path is None:
        return ImageFont.load_default(size=px)
    return ImageFont.truetype(str(path), size=px)


# ---------------------------------------------------------------------------
# Vocabulary and synthetic notes
# ---------------------------------------------------------------------------

#: Words that must never appear in a synthetic note: privacy tests search
#: every archive file and the logs, case-insensitively and as substrings, for
#: the note's words (4+ letters).  First the generic technical words found in
#: database schemas and configuration, then words common in SQL, logs and
#: config files that an earlier vocabulary used.
AVOIDED_WORDS: Final[frozenset[str]] = frozenset(
    (
        "client", "record", "records", "date", "note", "notes", "session", "page",
        "pages", "text", "word", "words", "status", "class", "blob", "key", "keys",
        "code", "file", "files", "index", "version", "created", "count", "size", "name",
        "time", "table", "value", "from", "with", "that", "this", "were", "have",
        "into", "none", "true", "false", "null", "data", "type", "user", "path",
        "sha256", "json", "mode", "open", "over", "then", "they", "when", "what",
        "about", "also", "more", "some", "only",
        # SQL / logs / config, and words that are substrings of common ones
        "conflict", "trigger", "triggers", "public", "values", "default", "check",
        "unique", "primary", "hours", "daily", "weekly", "nightly", "warning",
        "error", "found", "reading", "scanning", "continue", "ending", "recent",
        "marked", "places", "waiting", "noise", "lower", "family", "persistent",
        "rated", "since", "before", "during", "every", "after", "eight", "three",
        "several", "better", "calls", "practice", "identified", "unpacked",
        "resumed", "remains", "persists", "noted", "recovering", "supervisor",
        "addressed",
    )
)

# Vocabulary: telegraphic clinical shorthand, no articles or pronouns, every
# word at least 5 letters (a 4-letter word is found by chance in a few MB of
# ciphertext far too often for a plaintext-leak test).
_ADJECTIVES: Final[tuple[str, ...]] = (
    "enduring", "intermittent", "recurring", "lingering", "heightened",
    "escalating", "pervasive", "moderate", "occasional", "frequent",
    "recurrent", "morning", "evening", "gradual", "noticeable", "considerable",
)
_SYMPTOMS: Final[tuple[str, ...]] = (
    "insomnia", "anxiety", "rumination", "irritability", "fatigue",
    "restlessness", "panic", "tearfulness", "hypervigilance", "avoidance",
    "nightmares", "overthinking", "loneliness", "guilt", "worry", "sadness",
    "numbness", "agitation", "dread", "grief", "perfectionism",
)
_STRESSORS: Final[tuple[str, ...]] = (
    "workplace friction", "familial tension", "caregiving demands",
    "financial strain", "academic pressure", "upcoming relocation",
    "marital disagreements", "parenting stress", "unemployment",
    "looming deadlines", "holiday gatherings", "bereavement",
    "divorce proceedings", "neighbour disputes", "lengthy commuting",
    "sibling rivalry", "parental illness", "eldercare duties",
)
_RELATIVES: Final[tuple[str, ...]] = (
    "sister", "brother", "mother", "father", "partner", "husband", "spouse",
    "daughter", "grandmother", "roommate", "stepfather", "coworkers",
    "friends", "neighbour",
)
_SKILLS: Final[tuple[str, ...]] = (
    "breathing", "journaling", "grounding", "mindfulness",
    "muscle relaxation", "cognitive reframing", "behavioral activation",
    "sleep hygiene", "exposure hierarchy", "emotion labeling",
    "worry scheduling", "gratitude journaling", "paced breathing",
    "thought challenging", "progressive relaxation", "distress tolerance",
)
_FREQUENCIES: Final[tuple[str, ...]] = (
    "weekday mornings", "weeknight evenings", "throughout weekends",
    "alternate mornings", "bedtime routines", "weekday lunchtimes",
)
_SITUATIONS: Final[tuple[str, ...]] = (
    "crowded stores", "highway driving", "telephone conversations",
    "household dinners", "crowded buses", "staff meetings",
    "social gatherings", "elevators", "dentist visits",
    "unfamiliar neighbourhoods",
)
_ACTIVITIES: Final[tuple[str, ...]] = (
    "morning walks", "swimming", "gardening", "cooking", "painting",
    "cycling", "birdwatching", "volunteering", "pilates", "guitar lessons",
)
_TRENDS: Final[tuple[str, ...]] = (
    "improving", "fluctuating", "steady", "declining slightly",
    "rebounding gradually", "plateauing",
)
_OUTCOMES: Final[tuple[str, ...]] = (
    "described calmer evenings", "noticed fewer panic episodes",
    "deemed exercises helpful", "struggled initially", "tolerated exposure",
    "sleeping somewhat deeper", "noticed diminished tension",
    "described improved concentration",
)
_LOSSES: Final[tuple[str, ...]] = (
    "grandparent passing", "miscarriage", "friendship breakdown",
    "early retirement", "familial estrangement", "parental death",
)
_INTENSITIES: Final[tuple[str, ...]] = (
    "considerable", "intense", "lingering", "pervasive", "manageable", "heavy",
)
_NUMBERS: Final[tuple[str, ...]] = ("numerous", "seven", "eleven", "twelve")
_SLEEP: Final[tuple[str, ...]] = (
    "restlessly", "soundly", "erratically", "fitfully", "lightly", "adequately",
)
_DISCUSS: Final[tuple[str, ...]] = (
    "Discussed", "Explored", "Examined", "Revisited", "Probed",
)
_WHEN: Final[tuple[str, ...]] = (
    "fortnight", "Thursday", "Tuesday", "Monday", "Wednesday", "Friday",
)

_TEMPLATES: Final[tuple[str, ...]] = (
    "{discuss} {adj} {symptom} amidst {stressor}.",
    "{discuss} {adj} {symptom} regarding {stressor}.",
    "Practiced {skill} exercises; {outcome}.",
    "Homework: {skill} {frequency}.",
    "Appetite {trend}; sleeping {sleep}.",
    "Explored boundaries regarding {relative} demands.",
    "Motivation {trend}; {activity} reintroduced.",
    "Observed {adj} avoidance surrounding {situation}.",
    "Relapse prevention planning: pinpointed {number} stressors.",
    "Grief surrounding {loss} feels {intensity}.",
    "Coping strategies rehearsed: {skill}, {skill2}.",
    "Graded exposure toward {situation} progressing.",
    "Tension involving {relative} lingers despite {skill}.",
    "Rumination {trend}; {skill} newly introduced.",
    "Arranged {activity} regularly; {outcome}.",
    "Supportive conversations alongside {relative}; {symptom} {trend}.",
    "Maintain {skill} homework; upcoming appointment {when}.",
)

_ALL_LISTS: Final[tuple[tuple[str, ...], ...]] = (
    _ADJECTIVES, _SYMPTOMS, _STRESSORS, _RELATIVES, _SKILLS, _FREQUENCIES,
    _SITUATIONS, _ACTIVITIES, _TRENDS, _OUTCOMES, _LOSSES, _INTENSITIES,
    _NUMBERS, _SLEEP, _DISCUSS, _WHEN, _TEMPLATES,
)

_WORD_RE: Final[re.Pattern[str]] = re.compile(r"[A-Za-z]+")


def vocabulary() -> frozenset[str]:
    """Every lower-case word any :func:`synthetic_note` can contain."""
    words: set[str] = set()
    for items in _ALL_LISTS:
        for item in items:
            text = re.sub(r"\{[a-z0-9_]+\}", " ", item)
            words.update(w.lower() for w in _WORD_RE.findall(text))
    return frozenset(words)


def note_words(lines: Sequence[str], min_len: int = 5) -> list[str]:
    """Lower-cased alphabetic words of at least ``min_len`` letters, in order."""
    return [w.lower() for line in lines for w in _WORD_RE.findall(line) if len(w) >= min_len]


def word_recall(expected: Sequence[str], ocr_text: str, min_len: int = 5) -> float:
    """Share of the words (>= ``min_len`` letters) of ``expected`` found in ``ocr_text``.

    Matching is exact per word, case-insensitive; each expected occurrence counts.
    Returns 1.0 when there is nothing to find.
    """
    wanted = note_words(expected, min_len)
    if not wanted:
        return 1.0
    found = {w.lower() for w in _WORD_RE.findall(ocr_text)}
    return sum(w in found for w in wanted) / len(wanted)


def synthetic_note(seed: int, sentences: int = 4) -> list[str]:
    """Return ``sentences`` deterministic lines of SYNTHETIC progress-note text.

    One sentence per line; no template repeats until all have been used.
    Words are drawn from :func:`vocabulary` only (never :data:`AVOIDED_WORDS`).
    """
    if sentences < 0:
        raise ValueError("sentences must be >= 0")
    rng = random.Random(f"scanarchive-synth-note:{seed}")
    order: list[int] = []
    while len(order) < sentences:  # every template once before any repeats
        order.extend(rng.sample(range(len(_TEMPLATES)), len(_TEMPLATES)))
    out: list[str] = []
    for idx in order[:sentences]:
        skill, skill2 = rng.sample(_SKILLS, 2)
        out.append(
            _TEMPLATES[idx].format(
                discuss=rng.choice(_DISCUSS),
                adj=rng.choice(_ADJECTIVES),
                symptom=rng.choice(_SYMPTOMS),
                stressor=rng.choice(_STRESSORS),
                skill=skill,
                skill2=skill2,
                frequency=rng.choice(_FREQUENCIES),
                outcome=rng.choice(_OUTCOMES),
                trend=rng.choice(_TRENDS),
                sleep=rng.choice(_SLEEP),
                relative=rng.choice(_RELATIVES),
                intensity=rng.choice(_INTENSITIES),
                activity=rng.choice(_ACTIVITIES),
                situation=rng.choice(_SITUATIONS),
                number=rng.choice(_NUMBERS),
                loss=rng.choice(_LOSSES),
                when=rng.choice(_WHEN),
            )
        )
    return out


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------

_INKS: Final[tuple[tuple[int, int, int], ...]] = (
    (20, 30, 90),  # dark blue ballpoint
    (25, 35, 110),  # blue
    (15, 15, 20),  # black
    (35, 35, 45),  # graphite-ish black
)
_RULE_TONE: Final[int] = 208  # faint ruled lines (tinted with the ink in RGB)
_PAPER: Final[int] = 255
_SPACE_JITTER: Final[tuple[float, float]] = (0.85, 1.3)
_MARGINS_IN: Final[tuple[float, float, float, float]] = (0.7, 0.45, 0.45, 0.35)  # l, t, r, b
_LINE_SPACING: Final[float] = 1.55  # baseline-to-baseline, in font em


def _px(font_pt: float, dpi: int) -> int:
    return max(6, round(font_pt * dpi / 72.0))


def _luma(rgb: tuple[int, int, int]) -> int:
    r, g, b = rgb
    return round(0.299 * r + 0.587 * g + 0.114 * b)


def wrap_lines(
    lines: Sequence[str],
    *,
    font: Path | None = None,
    dpi: int = 300,
    width_in: float = 8.5,
    font_pt: float = DEFAULT_FONT_PT,
) -> list[str]:
    """Greedy word-wrap of ``lines`` to the writable width of a page.

    Uses the worst-case word spacing of :func:`render_page`, so the result is
    exactly the list of lines :func:`render_page` draws.
    """
    fnt = _load_font(font, _px(font_pt, dpi))
    return _wrap(lines, fnt, _text_width_px(dpi, width_in))


def _text_width_px(dpi: int, width_in: float) -> int:
    left, _, right, _ = _MARGINS_IN
    return int((width_in - left - right) * dpi)


def _wrap(lines: Sequence[str], fnt: FontT, max_w: int) -> list[str]:
    space = fnt.getlength(" ") * _SPACE_JITTER[1]
    out: list[str] = []
    for line in lines:
        current: list[str] = []
        width = 0.0
        for w in line.split():
            ww = fnt.getlength(w)
            extra = ww if not current else space + ww
            if current and width + extra > max_w:
                out.append(" ".join(current))
                current, width = [w], ww
            else:
                current.append(w)
                width += extra
        out.append(" ".join(current))
    return out


def _lines_capacity(fnt: FontT, px: int, dpi: int, height_in: float) -> tuple[int, int, int]:
    """Return (first baseline y, line pitch, max lines) for the page."""
    _, top, _, bottom = _MARGINS_IN
    if isinstance(fnt, ImageFont.FreeTypeFont):
        ascent, descent = fnt.getmetrics()
    else:
        ascent, descent = int(px * 0.8), int(px * 0.2)
    pitch = max(round(px * _LINE_SPACING), ascent + descent // 2)
    first = int(top * dpi) + max(ascent, int(px * 0.9))
    usable = int((height_in - bottom) * dpi) - descent - first
    return first, pitch, (usable // pitch + 1) if usable >= 0 else 0


def _gauss_lut(sigma: float, channels: int) -> list[int]:
    dist = NormalDist(0.0, sigma)
    lut = [min(255, max(0, 128 + round(dist.inv_cdf((i + 0.5) / 256.0)))) for i in range(256)]
    return lut * channels


def _add_noise(img: Image.Image, sigma: float, rng: random.Random) -> Image.Image:
    """Add zero-mean Gaussian noise (std ``sigma`` grey levels) using Pillow only."""
    channels = len(img.getbands())
    raw = rng.randbytes(img.width * img.height * channels)
    noise = Image.frombytes(img.mode, img.size, raw).point(_gauss_lut(sigma, channels))
    return ImageChops.add(img, noise, scale=1.0, offset=-128)


def render_page(
    lines: list[str],
    *,
    font: Path | None = None,
    dpi: int = 300,
    width_in: float = 8.5,
    height_in: float = 5.5,
    font_pt: float = DEFAULT_FONT_PT,
    rotation_deg: float = 0.0,
    noise: float = 0.0,
    blur: float = 0.0,
    seed: int = 0,
    mode: str = "L",
    ruled: bool = False,
    jitter: float = 1.0,
) -> Image.Image:
    """Render SYNTHETIC handwritten ``lines`` as a scanned page.

    * ``font``: TrueType path; ``None`` -> :func:`default_font`.
    * ``lines`` are word-wrapped to the page width (see :func:`wrap_lines`);
      :class:`ValueError` if they do not fit on the page height.
    * ``rotation_deg``: counter-clockwise skew, canvas size kept, white fill.
    * ``noise``: std-dev of additive Gaussian noise in 8-bit grey levels
      (0 = none, 8-15 = typical scanner, 30+ = very noisy).
    * ``blur``: Gaussian blur radius in pixels (applied before the noise,
      like scanner optics followed by sensor noise).
    * ``jitter``: scale of the per-word baseline/spacing/ink jitter (0 = none).
    * ``ruled``: draw faint ruled lines and a margin line.
    * ``mode``: ``"L"`` (greyscale) or ``"RGB"`` (dark-blue or black ink;
      processing is done in greyscale and colourised at the end).

    ``img.info["dpi"]`` is set to ``(dpi, dpi)``.
    """
    if mode not in ("L", "RGB"):
        raise ValueError(f"mode must be 'L' or 'RGB', got {mode!r}")
    if dpi <= 0 or width_in <= 0 or height_in <= 0 or font_pt <= 0:
        raise ValueError("dpi, width_in, height_in and font_pt must be positive")
    rng = random.Random(f"scanarchive-synth-page:{seed}")
    px = _px(font_pt, dpi)
    fnt = _load_font(font, px)
    w_px, h_px = round(width_in * dpi), round(height_in * dpi)
    left_px = int(_MARGINS_IN[0] * dpi)
    wrapped = _wrap(lines, fnt, _text_width_px(dpi, width_in))
    first, pitch, capacity = _lines_capacity(fnt, px, dpi, height_in)
    if len(wrapped) > capacity:
        raise ValueError(
            f"{len(wrapped)} wrapped lines do not fit; page holds {capacity} at {font_pt} pt"
        )

    ink_rgb = rng.choice(_INKS)
    ink_tone = _luma(ink_rgb)

    # Everything is drawn and processed as a greyscale "tone" image (fast);
    # RGB output is colourised at the very end (paper white -> ink colour).
    img = Image.new("L", (w_px, h_px), _PAPER)
    draw = ImageDraw.Draw(img)

    if ruled:
        rule_w = max(1, dpi // 150)
        rule_y = first + pitch // 6
        while rule_y < h_px - int(0.1 * dpi):
            draw.line([(0, rule_y), (w_px, rule_y)], fill=_RULE_TONE, width=rule_w)
            rule_y += pitch
        mx = left_px - int(0.12 * dpi)
        draw.line([(mx, 0), (mx, h_px)], fill=_RULE_TONE, width=rule_w)

    space = fnt.getlength(" ")
    amp = max(0.0, jitter) * px
    for i, line in enumerate(wrapped):
        base_y = first + i * pitch
        x = left_px + rng.uniform(-0.04, 0.08) * amp
        slope = rng.uniform(-0.004, 0.004) * jitter
        for w in line.split():
            dy = rng.gauss(0.0, 0.025) * amp
            dy = max(-0.06 * amp, min(0.06 * amp, dy))
            shade = rng.uniform(0.8, 1.2) if jitter > 0 else 1.0
            y = base_y + (x - left_px) * slope + dy
            draw.text((x, y), w, font=fnt, fill=min(255, round(ink_tone * shade)), anchor="ls")
            x += fnt.getlength(w) + space * (
                rng.uniform(*_SPACE_JITTER) if jitter > 0 else 1.0
            )

    if rotation_deg:
        img = img.rotate(
            rotation_deg,
            resample=Image.Resampling.BILINEAR,
            expand=False,
            fillcolor=_PAPER,
        )
    if blur > 0:
        img = img.filter(ImageFilter.GaussianBlur(radius=blur))
    if noise > 0:
        img = _add_noise(img, noise, rng)
    if mode == "RGB":
        img = img.convert("RGB").point(_colourise_lut(ink_rgb, ink_tone))
    img.info["dpi"] = (dpi, dpi)
    return img


def _colourise_lut(ink_rgb: tuple[int, int, int], ink_tone: int) -> list[int]:
    """Per-channel LUT mapping tone ``ink_tone`` -> ``ink_rgb`` and 255 -> paper white."""
    lut: list[int] = []
    for c in ink_rgb:
        for t in range(256):
            if t <= ink_tone:
                lut.append(round(c * t / max(1, ink_tone)))
            else:
                lut.append(round(c + (_PAPER - c) * (t - ink_tone) / (255 - ink_tone)))
    return lut


# ---------------------------------------------------------------------------
# Writing scans
# ---------------------------------------------------------------------------

#: Canonical format name -> file extension.
SCAN_FORMATS: Final[dict[str, str]] = {"png": "png", "jpeg": "jpg", "tiff": "tif", "pdf": "pdf"}
_FORMAT_ALIASES: Final[dict[str, str]] = {"jpg": "jpeg", "tif": "tiff"}


def _canonical_format(fmt: str) -> str:
    f = fmt.lower().lstrip(".")
    f = _FORMAT_ALIASES.get(f, f)
    if f not in SCAN_FORMATS:
        raise ValueError(f"unsupported scan format {fmt!r}; use one of {sorted(SCAN_FORMATS)}")
    return f


def _image_dpi(img: Image.Image) -> tuple[int, int]:
    dpi = img.info.get("dpi")
    if isinstance(dpi, tuple) and len(dpi) == 2:
        return (round(float(dpi[0])), round(float(dpi[1])))
    return (300, 300)


def write_scan(path: Path, images: list[Image.Image], fmt: str) -> None:
    """Save ``images`` to ``path`` as ``"png"``, ``"jpeg"``, ``"tiff"`` or ``"pdf"``.

    PNG and JPEG (quality 90) hold exactly one page; TIFF (LZW, lossless) and
    PDF (Pillow's writer, JPEG-compressed pages) hold any number.  The
    resolution is always written (taken from the first image's
    ``info["dpi"]``, default 300).  Note PNG stores pixels per metre, so it
    reads back as ~299.9994 dpi: round when comparing.
    """
    f = _canonical_format(fmt)
    if not images:
        raise ValueError("no images to write")
    if f in ("png", "jpeg") and len(images) != 1:
        raise ValueError(f"{f} holds a single page; got {len(images)} (use tiff or pdf)")
    dpi = _image_dpi(images[0])
    first, rest = images[0], images[1:]
    path = Path(path)
    if f == "png":
        # compress_level=1: ~4x faster than the default on noisy scans, ~10 % larger
        first.save(path, format="PNG", dpi=dpi, compress_level=1)
    elif f == "jpeg":
        first.save(path, format="JPEG", quality=90, dpi=dpi)
    elif f == "tiff":
        first.save(
            path, format="TIFF", compression="tiff_lzw", dpi=dpi,
            save_all=True, append_images=rest,
        )
    else:
        first.save(
            path, format="PDF", resolution=float(dpi[0]),
            save_all=True, append_images=rest,
        )


def make_scan_set(
    dest: Path,
    count: int,
    *,
    seed: int = 0,
    fmt: str = "png",
    pages_per_scan: int = 1,
    sentences: int = 4,
    font: Path | None = None,
    fonts: Sequence[Path] | None = None,
    font_pt: float = DEFAULT_FONT_PT,
    dpi: int = 300,
    width_in: float = 8.5,
    height_in: float = 5.5,
    max_rotation_deg: float = 1.5,
    noise: float = 6.0,
    blur: float = 0.6,
    mode: str = "L",
    ruled: bool = False,
    prefix: str = "scan",
) -> list[tuple[Path, list[str]]]:
    """Write ``count`` SYNTHETIC scans into ``dest`` and return what is on them.

    Each scan gets ``pages_per_scan`` pages, each page its own
    :func:`synthetic_note`; rotation is drawn uniformly from
    ``±max_rotation_deg`` per page.  ``fonts`` (if given) is cycled per page;
    otherwise ``font`` (``None`` -> :func:`default_font`) is used throughout.
    Sentences that would not fit on a page are dropped (at least one is kept).

    Returns ``[(path, lines), ...]`` where ``lines`` are the wrapped lines
    actually drawn, all pages of the scan in order.  Files are named
    ``{prefix}-{i:04d}.{ext}``; the whole set is deterministic in ``seed``.
    """
    f = _canonical_format(fmt)
    if count < 0 or pages_per_scan < 1:
        raise ValueError("count must be >= 0 and pages_per_scan >= 1")
    if f in ("png", "jpeg") and pages_per_scan != 1:
        raise ValueError(f"{f} holds a single page; use tiff or pdf for pages_per_scan > 1")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    font_cycle: list[Path | None] = list(fonts) if fonts else [font]
    rng = random.Random(f"scanarchive-synth-set:{seed}")
    results: list[tuple[Path, list[str]]] = []
    page_no = 0
    for i in range(count):
        images: list[Image.Image] = []
        written: list[str] = []
        for _ in range(pages_per_scan):
            page_font = font_cycle[page_no % len(font_cycle)]
            page_no += 1
            note_seed = rng.randrange(2**31)
            page_seed = rng.randrange(2**31)
            angle = rng.uniform(-max_rotation_deg, max_rotation_deg) if max_rotation_deg else 0.0
            note = synthetic_note(note_seed, sentences)
            while True:
                lines = wrap_lines(
                    note, font=page_font, dpi=dpi, width_in=width_in, font_pt=font_pt
                )
                try:
                    img = render_page(
                        lines, font=page_font, dpi=dpi, width_in=width_in,
                        height_in=height_in, font_pt=font_pt, rotation_deg=angle,
                        noise=noise, blur=blur, seed=page_seed, mode=mode, ruled=ruled,
                    )
                    break
                except ValueError:
                    if len(note) <= 1:
                        raise
                    note = note[:-1]
            images.append(img)
            written.extend(lines)
        path = dest / f"{prefix}-{i:04d}.{SCAN_FORMATS[f]}"
        write_scan(path, images, f)
        results.append((path, written))
    return results


# ---------------------------------------------------------------------------
# Tick marks (synthetic pen marks on note-sheet boxes)
# ---------------------------------------------------------------------------

MARKS: Final[tuple[str, ...]] = ("check", "cross", "filled", "circled", "pencil", "edge", "slash")
NOT_A_TICK: Final[str] = "stray"  # a pen line running through a box and well beyond: must never read as ticked


def draw_mark(draw: ImageDraw.ImageDraw, x: int, y: int, size: int, kind: str, rng: random.Random) -> None:
    """Draw one SYNTHETIC mark on a box whose top-left is (x, y), at 300 dpi, with a little jitter."""

    def j(v: int) -> int:
        return v + rng.randint(-3, 3)

    ink = rng.randint(20, 70)
    width = rng.randint(4, 7)
    if kind == "check":
        draw.line([(j(x + 12), j(y + 34)), (j(x + 28), j(y + 52)), (j(x + 58), j(y + 8))], fill=ink, width=width)
    elif kind == "pencil":  # faint grey pencil
        draw.line([(j(x + 12), j(y + 34)), (j(x + 28), j(y + 52)), (j(x + 56), j(y + 10))],
                  fill=rng.randint(150, 175), width=width)
    elif kind == "cross":
        draw.line([(j(x + 10), j(y + 10)), (j(x + size - 10), j(y + size - 10))], fill=ink, width=width)
        draw.line([(j(x + size - 10), j(y + 10)), (j(x + 10), j(y + size - 10))], fill=ink, width=width)
    elif kind == "filled":
        draw.rectangle((j(x + 6), j(y + 6), j(x + size - 6), j(y + size - 6)), fill=ink)
    elif kind == "circled":
        pad = rng.randint(16, 24)
        draw.ellipse((x - pad, y - pad, x + size + pad, y + size + pad), outline=ink, width=width)
    elif kind == "edge":  # a tick whose long stroke runs out over the box edge
        draw.line([(j(x + 20), j(y + 40)), (j(x + 34), j(y + 60)), (j(x + 80), j(y - 30))], fill=ink, width=width)
    elif kind == "slash":
        draw.line([(j(x + 12), j(y + size - 12)), (j(x + size - 12), j(y + 12))], fill=ink, width=width)
    elif kind == NOT_A_TICK:
        dy = rng.randint(-8, 8)
        draw.line([(x - 170, y + size // 2 + dy), (x + size + 170, y + size // 2 - dy)], fill=ink, width=width)
    elif kind != "none":
        raise ValueError(f"unknown mark {kind!r}")
