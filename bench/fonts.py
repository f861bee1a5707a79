"""Handwriting fonts for bench/recall.py: a fixed, pinned set from the npm registry, and a train/test split.

    .venv/bin/python bench/fonts.py [--font-cache DIR]     # fetch (or check) them all and list them

The four Debian fonts that scanarchive.demo.synth uses (and that scanarchive was tuned on) are "seen".
The npm families below (Fontsource packages, `@fontsource/<family>`, each pinned to one version and to
the sha256 of its font file) are split by a hash of the family name, fixed here and never chosen by
looking at results: one half joins "seen" (fonts that may be used when tuning), the other half is
"unseen" — fonts nobody may tune on, so their recall is a figure for handwriting the code never saw.

Fonts are downloaded into a cache folder outside the repository (default
$XDG_CACHE_HOME/scanarchive-bench/fonts, i.e. ~/.cache/…; --font-cache DIR), never committed.  Each
family's folder holds the font file (weight 400, latin subset, .woff2 — Pillow's FreeType reads it as
is), the package's LICENSE and a manifest.json with version, sha256 and licence.  A cached file whose
sha256 is not the pinned one is removed and fetched again; a download whose sha256 is not the pinned
one is refused.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scanarchive.demo import synth  # noqa: E402

REGISTRY = "https://registry.npmjs.org"
SPLIT_SALT = "scanarchive-font-split-v1"
SPLITS = ("seen", "unseen", "all")

#: family -> (pinned package version, sha256 of files/<family>-latin-400-normal.woff2 in that version).
FAMILIES: dict[str, tuple[str, str]] = {
    "architects-daughter": ("5.3.0", "284a3c1856b253a681c180bf5328cae3b94d4aaab702f6385490ec4e1b449df3"),
    "caveat": ("5.3.0", "d0b7b931b8980049327e8f8f9ac264617c8200b8422d62e886473d3d9527bad3"),
    "cedarville-cursive": ("5.3.0", "ac7aa92ed78f9e9598a1efa3aa33b3963daf276b1f4851baa104f647d5f648d8"),
    "covered-by-your-grace": ("5.3.0", "d2e1a521cf22027d0bb0651f2e6fff548320c18482dd8d52bc4e785563136050"),
    "dancing-script": ("5.3.0", "570e4265bbcb453353ce2fdf63d179332d8daa92691d567547b8a383f3b46c3b"),
    "dawning-of-a-new-day": ("5.3.0", "4936d1dfbc52cfc9182ba82a9022cdac3c869dcb3af91d423b1579b7b8e9f4be"),
    "gloria-hallelujah": ("5.3.0", "90b0ef8d2ed6d4b46b4e010e7b335b182c45c330a15bac3ca76497dbae544700"),
    "gochi-hand": ("5.3.0", "8851738d8167bd0384db9dee1df6e5b5e2f9221e613e3466cdea19587a81d7b6"),
    "handlee": ("5.3.0", "d3807ea30015f5082c0a3e2b7803885310db888be091dbc86fecb1ca67f3c622"),
    "homemade-apple": ("5.3.0", "bbaa96c741caa479d4647fc567f64e5ddc71eec58ee9849cb9e8a14bee65bc30"),
    "indie-flower": ("5.3.0", "cb57752edc96294323252e8d84fa25f975943b2ef3e87b2c984b15ca935d7657"),
    "just-another-hand": ("5.3.0", "e138cf3a10c0416ca75f5aa2c2e4d17df0b398041758bacb243302899f957cc2"),
    "kalam": ("5.3.0", "954410601a823f37e219f7930b7446f86afa15621326a7078d56fb9c910135cb"),
    "la-belle-aurore": ("5.3.0", "54da154868e2237e6a2323ede6a4db035be01f0547692c66b0fd7e83a0867047"),
    "mrs-saint-delafield": ("5.3.0", "0672851f27cedde6c894e109ddce4d329a2d28f605d54e7208b5c84d836512da"),
    "nothing-you-could-do": ("5.3.0", "84e79a16406aaa9d2bc81583fa7e9f692ed0ad1612967a7deb5ef47f8c1fc6c5"),
    "over-the-rainbow": ("5.3.0", "37896f0dcf287c5856e85b66ef3a8d918f0c332dd8a11d4cd8d7fa343dc64005"),
    "patrick-hand": ("5.3.0", "ac5bc9033b2572bf84d39f7150c1634e37ed16e8dbee632d6d0bceac0bbf0199"),
    "reenie-beanie": ("5.3.0", "f86de18375e3edba402d39ff85030e270f724d7af865f74a74c92f34a947072c"),
    "rock-salt": ("5.3.0", "1e17c66b0bccfe2d6f34849744762cf1109de0ef1941b8924760756ecffb5897"),
    "shadows-into-light": ("5.3.0", "2498c027559c4ae9a920e18e30031193148983e7ea195416d62c5d0ea2eaa3ac"),
    "sue-ellen-francisco": ("5.3.0", "af35498e786cbebc60db75e5bd1448472dc44cda41698708edc7ae770fbf469c"),
    "waiting-for-the-sunrise": ("5.3.0", "03ee8b42e5dcb6f3cb2d1d8f35213daf5804aebbca430894a45936845a34ae68"),
    "zeyada": ("5.3.0", "f619e7ead16ca4ee40df66e1d7ec9b2ca2fa46cf8ef0117bd621eda475a61f0d"),
}


@dataclass(frozen=True)
class Font:
    name: str  # family name, or the Debian file's stem
    path: Path
    split: str  # "seen" or "unseen"
    licence: str
    sha256: str
    source: str  # "debian" or "npm @fontsource/<family>@<version>"


def split_of(family: str) -> str:
    """The fixed split of an npm family: "unseen" when the salted sha256 of its name is odd."""
    return "unseen" if hashlib.sha256(f"{SPLIT_SALT}:{family}".encode()).digest()[0] % 2 else "seen"


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "scanarchive-bench" / "fonts"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def font_file_name(family: str) -> str:
    return f"{family}-latin-400-normal.woff2"


def cached(cache: Path, family: str, version: str, sha256: str) -> Path | None:
    """The cached font of `family`@`version` if present and its sha256 is the expected one (when one is
    pinned); a file that fails the check is removed and None returned, so that it is fetched again."""
    folder = cache / f"{family}-{version}"
    path = folder / font_file_name(family)
    manifest = folder / "manifest.json"
    if not path.is_file() or not manifest.is_file():
        return None
    actual = sha256_of(path)
    recorded = json.loads(manifest.read_text()).get("sha256")
    if actual != recorded or (sha256 and actual != sha256):
        path.unlink()
        manifest.unlink()
        return None
    return path


def unpack(tgz: bytes, family: str, version: str, sha256: str, cache: Path) -> Path:
    """Take the latin 400 font file, LICENSE and licence field out of a Fontsource package tarball into
    the cache; refuse (ValueError) a font whose sha256 is not the pinned one."""
    name = font_file_name(family)
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:

        def member(path: str) -> bytes | None:
            try:
                f = tar.extractfile(f"package/{path}")
            except KeyError:
                return None
            return f.read() if f is not None else None

        font = member(f"files/{name}")
        if font is None:
            raise ValueError(f"@fontsource/{family}@{version} has no files/{name}")
        package = json.loads(member("package.json") or b"{}")
        licence_text = member("LICENSE") or b""
    actual = hashlib.sha256(font).hexdigest()
    if sha256 and actual != sha256:
        raise ValueError(f"@fontsource/{family}@{version}: {name} has sha256 {actual}, pinned {sha256}")
    folder = cache / f"{family}-{version}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "LICENSE").write_bytes(licence_text)
    tmp = folder / (name + ".part")
    tmp.write_bytes(font)
    tmp.replace(folder / name)
    manifest = {
        "family": family,
        "version": version,
        "file": name,
        "sha256": actual,
        "license": str(package.get("license", "unknown")),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return folder / name


def fetch(family: str, cache: Path) -> Path:
    version, sha256 = FAMILIES[family]
    path = cached(cache, family, version, sha256)
    if path is not None:
        return path
    url = f"{REGISTRY}/@fontsource/{family}/-/{family}-{version}.tgz"
    try:
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (a fixed https address)
            tgz = response.read()
    except OSError as exc:
        sys.exit(f"could not download {url} ({exc}); run once with network access, or use --fonts debian")
    return unpack(tgz, family, version, sha256, cache)


def npm_font(family: str, cache: Path) -> Font:
    path = fetch(family, cache)
    manifest = json.loads((path.parent / "manifest.json").read_text())
    return Font(
        family,
        path,
        split_of(family),
        manifest["license"],
        manifest["sha256"],
        f"npm @fontsource/{family}@{manifest['version']}",
    )


def debian_fonts() -> list[Font]:
    """The four Debian fonts scanarchive.demo.synth uses (those installed): all "seen"."""
    return [Font(p.stem, p, "seen", "Debian package", sha256_of(p), "debian") for p in synth.available_fonts()]


def fonts_for(split: str, cache: Path | None = None) -> list[Font]:
    """The fonts of a split: "debian" (the four of synth, today's default), "seen" (those plus the
    npm families of the seen half), "unseen" (the npm families of the other half) or "all"."""
    if split == "debian":
        return debian_fonts()
    if split not in SPLITS:
        raise ValueError(f"split must be one of debian, {', '.join(SPLITS)}; got {split!r}")
    cache = cache or default_cache()
    out = debian_fonts() if split in ("seen", "all") else []
    for family in sorted(FAMILIES):
        if split == "all" or split_of(family) == split:
            out.append(npm_font(family, cache))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--font-cache", type=Path, default=None)
    args = parser.parse_args()
    for font in fonts_for("all", args.font_cache):
        print(f"{font.split:<7} {font.name:<26} {font.licence:<15} {font.sha256[:16]}  {font.source}")


if __name__ == "__main__":
    main()
