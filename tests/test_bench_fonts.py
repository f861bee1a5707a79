"""bench/fonts.py: the fixed train/test split of handwriting fonts and its sha256-checked cache (no network)."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

import pytest
from PIL import ImageFont

from scanarchive.demo import synth

sys.path.append(str(Path(__file__).resolve().parent.parent / "bench"))  # after the tree: shadows nothing
import fonts as bench_fonts

needs_font = pytest.mark.skipif(not synth.available_fonts(), reason="no Debian handwriting font installed")


def test_split_is_fixed_balanced_and_disjoint() -> None:
    splits = {family: bench_fonts.split_of(family) for family in bench_fonts.FAMILIES}
    unseen = sorted(f for f, s in splits.items() if s == "unseen")
    seen = sorted(f for f, s in splits.items() if s == "seen")
    assert set(splits.values()) == {"seen", "unseen"}
    assert len(bench_fonts.FAMILIES) >= 16
    assert min(len(seen), len(unseen)) >= len(bench_fonts.FAMILIES) // 3
    # Pinned: changing the salt or the rule would silently move fonts between train and test.
    assert "kalam" in unseen and "mrs-saint-delafield" in unseen and "la-belle-aurore" in unseen
    assert "caveat" in seen and "homemade-apple" in seen and "zeyada" in seen
    for version, sha256 in bench_fonts.FAMILIES.values():
        assert version and len(sha256) == 64 and int(sha256, 16) >= 0


@needs_font
def test_debian_fonts_are_seen_and_unseen_needs_no_debian_font(tmp_path: Path) -> None:
    debian = bench_fonts.fonts_for("debian", tmp_path)
    assert debian and all(f.split == "seen" and f.source == "debian" for f in debian)
    assert [f.path for f in debian] == synth.available_fonts()
    with pytest.raises(ValueError, match="split must be"):
        bench_fonts.fonts_for("train", tmp_path)


def package(family: str, font: bytes, licence: str = "OFL-1.1") -> bytes:
    """A Fontsource-shaped package tarball holding `font` as its latin 400 woff2."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in (
            (f"package/files/{bench_fonts.font_file_name(family)}", font),
            ("package/package.json", json.dumps({"name": f"@fontsource/{family}", "license": licence}).encode()),
            ("package/LICENSE", b"SIL Open Font License, Version 1.1\n"),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@needs_font
def test_unpack_then_cache_checks_sha256(tmp_path: Path) -> None:
    font = synth.available_fonts()[0].read_bytes()
    sha = hashlib.sha256(font).hexdigest()
    path = bench_fonts.unpack(package("fake-hand", font), "fake-hand", "1.0.0", sha, tmp_path)
    assert path.read_bytes() == font
    manifest = json.loads((path.parent / "manifest.json").read_text())
    assert manifest == {
        "family": "fake-hand",
        "version": "1.0.0",
        "file": "fake-hand-latin-400-normal.woff2",
        "sha256": sha,
        "license": "OFL-1.1",
    }
    assert "Open Font License" in (path.parent / "LICENSE").read_text()
    assert bench_fonts.cached(tmp_path, "fake-hand", "1.0.0", sha) == path
    assert ImageFont.truetype(str(path), 40).getlength("word") > 0  # Pillow reads what the cache holds

    # A cached file that changed is dropped (so it is fetched again), not used.
    path.write_bytes(font[:-1] + bytes([font[-1] ^ 1]))
    assert bench_fonts.cached(tmp_path, "fake-hand", "1.0.0", sha) is None
    assert not path.exists()
    assert bench_fonts.cached(tmp_path, "absent-hand", "1.0.0", sha) is None


@needs_font
def test_download_with_other_sha256_is_refused(tmp_path: Path) -> None:
    font = synth.available_fonts()[0].read_bytes()
    with pytest.raises(ValueError, match="pinned"):
        bench_fonts.unpack(package("fake-hand", font), "fake-hand", "1.0.0", "0" * 64, tmp_path)
    assert not (tmp_path / "fake-hand-1.0.0" / "fake-hand-latin-400-normal.woff2").exists()
    with pytest.raises(ValueError, match="has no files"):
        bench_fonts.unpack(package("other-hand", font), "fake-hand", "1.0.0", "", tmp_path)
