"""How the golden archive in this folder was made (run once, by hand, then committed).

Never regenerate it to make a failing test pass: the golden archive exists so
that a change which breaks old archives fails CI. To add a newer golden
archive for a new format version, write it to a new folder (golden/v2/ …).

    python tests/data/golden/make_golden.py OUTDIR

v1/ was written by 0.1.0 (catalog schema 1, no quarantine); v2/ by 0.2.0
(catalog schema 2, with one quarantined scan).
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from scanarchive.archive import quarantine
from scanarchive.archive.layout import Archive
from scanarchive.ingest.pipeline import ingest_file

PASSPHRASE = "golden archive passphrase v1"
FONT = "/usr/share/fonts/truetype/humor-sans/Humor-Sans.ttf"


def page(lines: list[str], noise: bool) -> Image.Image:
    image = Image.new("L", (1200, 600), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT, 48)
    for i, line in enumerate(lines):
        draw.text((60, 60 + 90 * i), line, font=font, fill=0)
    if noise:  # makes the PNG large enough to span several 64 KiB chunks
        rng = random.Random(7)
        pixels = image.load()
        assert pixels is not None
        for _ in range(120_000):
            pixels[rng.randrange(1200), rng.randrange(600)] = rng.randrange(180, 256)
    return image


def main(out: Path) -> None:
    archive = Archive.create(out, PASSPHRASE, kdf_seconds=0.01)
    expected = []
    for n, (lines, noise) in enumerate(
        [(["Golden sample alpha", "marmalade lighthouse"], False), (["Golden sample beta", "quartz harbour"], True)]
    ):
        src = out.parent / f"golden-{n}.png"
        page(lines, noise).save(src, dpi=(300, 300))
        result = ingest_file(archive, src, client=f"GOLD-{n}", session_date="2026-11-27")
        record = archive.catalog.record(result.record_id)
        identity = archive.unlock(PASSPHRASE)
        pdf = archive.open_section(identity, record, "pdf")
        ocr = archive.open_section(identity, record, "ocr")
        expected.append(
            {
                "record_id": record.id,
                "pdf_sha256": hashlib.sha256(pdf).hexdigest(),
                "ocr_sha256": hashlib.sha256(ocr).hexdigest(),
                "blob_sha256": record.blob_sha256,
                "searchable_word": lines[1].split()[0],
            }
        )
    # Since 0.2.0 (catalog schema 2): one scan sealed into the quarantine.
    rejected = b"this is not an image, so it is quarantined"
    entry = quarantine.seal_scan(archive, rejected, "rejected.png", hashlib.sha256(rejected).hexdigest(), "golden")
    held = [{"id": entry.id, "original_sha256": hashlib.sha256(rejected).hexdigest()}]
    archive.catalog.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    archive.close()
    doc = {"passphrase": PASSPHRASE, "records": expected, "quarantine": held}
    (out / "expected.json").write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
