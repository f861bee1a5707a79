"""Typed, validated settings: where the archive is and what its config.toml says."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from scanarchive import packagedata
from scanarchive.crypto.keys import DecisionKey, Recipient
from scanarchive.errors import ConfigError
from scanarchive.fsio import write_atomic

TEMPLATE = packagedata.DEFAULT_CONFIG
ENV_ARCHIVE = "SCANARCHIVE_ARCHIVE"
ENV_PASSPHRASE_FILE = "SCANARCHIVE_PASSPHRASE_FILE"
_T = TypeVar("_T")


def default_archive_dir() -> Path:
    """--archive DIR, else $SCANARCHIVE_ARCHIVE, else the XDG data dir."""
    env = os.environ.get(ENV_ARCHIVE)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "scanarchive"


#: OCR engines scanarchive can run; Tesseract is required, the others are optional extras.
OCR_ENGINES = ("tesseract", "rapidocr")


@dataclass(frozen=True)
class IngestSettings:
    max_file_mb: int = 512
    max_pages: int = 500
    max_megapixels: int = 250
    ocr_timeout_seconds: float = 180.0
    ocr_languages: str = "eng"
    ocr_engines: tuple[str, ...] = ("tesseract", "rapidocr")
    jobs: int = 0

    def __post_init__(self) -> None:
        engines = self.ocr_engines
        if not isinstance(engines, (list, tuple)) or not all(isinstance(e, str) for e in engines):
            raise ConfigError('ingest.ocr_engines must be a list like ["tesseract", "rapidocr"]')
        unknown = sorted(set(engines) - set(OCR_ENGINES))
        if unknown:
            raise ConfigError(
                f"ingest.ocr_engines names an unknown engine: {', '.join(unknown)}",
                hint=f"The engines scanarchive knows: {', '.join(OCR_ENGINES)}.",
            )
        if "tesseract" not in engines:
            raise ConfigError('ingest.ocr_engines must include "tesseract" (the other engines only add to it)')
        object.__setattr__(self, "ocr_engines", tuple(dict.fromkeys(engines)))
        for name in ("max_file_mb", "max_pages", "max_megapixels", "jobs"):
            if not isinstance(getattr(self, name), int) or isinstance(getattr(self, name), bool):
                raise ConfigError(f"ingest.{name} must be a whole number (it is {getattr(self, name)!r})")
        if not isinstance(self.ocr_languages, str):
            raise ConfigError('ingest.ocr_languages must be text in quotes, like "eng"')
        _bound("ingest.max_file_mb", self.max_file_mb, 1, 100_000)
        _bound("ingest.max_pages", self.max_pages, 1, 100_000)
        _bound("ingest.max_megapixels", self.max_megapixels, 1, 2_000)
        _bound("ingest.ocr_timeout_seconds", self.ocr_timeout_seconds, 1, 3600)
        _bound("ingest.jobs", self.jobs, 0, 256)
        if not all(part.isalnum() or part == "_" for part in self.ocr_languages.replace("_", "").split("+")):
            raise ConfigError(
                f"ingest.ocr_languages {self.ocr_languages!r} is not a list of language codes like 'eng+deu'"
            )

    @property
    def effective_jobs(self) -> int:
        return self.jobs or len(os.sched_getaffinity(0)) or 1


def _bound(name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ConfigError(f"{name} must be a number from {low} to {high} (it is {value!r})")


@dataclass(frozen=True)
class DropSettings:
    folder: str = ""
    settle_seconds: float = 5.0
    rescan_seconds: float = 60.0
    retry_base_seconds: float = 30.0
    retry_max_seconds: float = 3600.0
    ocr_timeout_attempts: int = 3

    def __post_init__(self) -> None:
        if not isinstance(self.folder, str):
            raise ConfigError('drop.folder must be a folder path in quotes, like "/srv/scans"')
        if not isinstance(self.ocr_timeout_attempts, int) or isinstance(self.ocr_timeout_attempts, bool):
            raise ConfigError("drop.ocr_timeout_attempts must be a whole number")
        _bound("drop.settle_seconds", self.settle_seconds, 0.1, 3600)
        _bound("drop.rescan_seconds", self.rescan_seconds, 1, 86_400)
        _bound("drop.retry_base_seconds", self.retry_base_seconds, 0.1, 86_400)
        _bound("drop.retry_max_seconds", self.retry_max_seconds, 0.1, 7 * 86_400)
        _bound("drop.ocr_timeout_attempts", self.ocr_timeout_attempts, 1, 100)

    def retry_delay(self, attempts: int) -> float:
        """Exponential backoff: base, 2×base, 4×base, … capped at retry_max_seconds."""
        return float(min(self.retry_max_seconds, self.retry_base_seconds * 2 ** max(0, attempts - 1)))


@dataclass(frozen=True)
class IdentifySettings:
    filename_pattern: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.filename_pattern, str):
            raise ConfigError("identify.filename_pattern must be a regular expression in quotes")
        if self.filename_pattern:
            try:
                compiled = re.compile(self.filename_pattern)
            except re.error as exc:
                raise ConfigError(f"identify.filename_pattern is not a valid regular expression ({exc})") from exc
            if not {"client", "date"} & set(compiled.groupindex):
                raise ConfigError("identify.filename_pattern needs a named group (?P<client>…) or (?P<date>…)")


@dataclass(frozen=True)
class RetentionSettings:
    presets: tuple[str, ...] = ()
    approval: str = "required"
    allow_unconfirmed: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.presets, (list, tuple)) or not all(isinstance(p, str) for p in self.presets):
            raise ConfigError('retention.presets must be a list of preset ids, like ["apa_2007", "us_tx_lpc"]')
        object.__setattr__(self, "presets", tuple(self.presets))
        if self.approval not in ("required", "automatic"):
            raise ConfigError('retention.approval must be "required" or "automatic"')
        if not isinstance(self.allow_unconfirmed, bool):
            raise ConfigError("retention.allow_unconfirmed must be true or false")


@dataclass(frozen=True)
class ArchiveConfig:
    archive_id: str
    recipient: Recipient
    format_version: int = 1
    ingest: IngestSettings = field(default_factory=IngestSettings)
    drop: DropSettings = field(default_factory=DropSettings)
    identify: IdentifySettings = field(default_factory=IdentifySettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    decision_key: DecisionKey | None = None  # pinned verification key of signed decisions; None: not upgraded yet

    @property
    def archive8(self) -> str:
        """The short archive id printed in sheet codes: its first 8 hex digits."""
        return self.archive_id.replace("-", "")[:8]


def _section(doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] in config.toml must be a table")
    return value


def parse_config(text: str) -> ArchiveConfig:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config.toml is not valid TOML ({exc})") from exc
    archive = _section(doc, "archive")
    try:
        archive_id = str(archive["id"])
        recipient = Recipient.decode(str(archive["recipient"]))
        decision_key = DecisionKey.decode(str(archive["decision_key"])) if "decision_key" in archive else None
    except KeyError as exc:
        raise ConfigError(f"config.toml lacks archive.{exc.args[0]}") from exc
    version = archive.get("format_version", 1)
    if version != 1:
        raise ConfigError(f"config.toml has format_version {version!r}, which this scanarchive does not know")
    unknown_tables = sorted(set(doc) - {"archive", "ingest", "drop", "identify", "retention"})
    if unknown_tables:
        raise ConfigError(f"config.toml has unknown table(s) [{'], ['.join(unknown_tables)}]")
    return ArchiveConfig(
        archive_id=archive_id,
        recipient=recipient,
        decision_key=decision_key,
        ingest=_settings(IngestSettings, doc, "ingest"),
        drop=_settings(DropSettings, doc, "drop"),
        identify=_settings(IdentifySettings, doc, "identify"),
        retention=_settings(RetentionSettings, doc, "retention"),
    )


def _settings(cls: type[_T], doc: dict[str, Any], name: str) -> _T:
    table = _section(doc, name)
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"config.toml has unknown setting(s) {name}.{f', {name}.'.join(unknown)}")
    return cls(**table)


def set_retention(path: Path, presets: list[str], allow_unconfirmed: bool, approval: str | None = None) -> None:
    """Rewrite [retention] presets and allow_unconfirmed (and approval, if given) in config.toml,
    keeping every comment."""
    text = path.read_text(encoding="utf-8")
    listed = "[" + ", ".join(f'"{p}"' for p in presets) + "]"
    if "[retention]" not in text:
        text = text.rstrip("\n") + '\n\n[retention]\npresets = []\napproval = "required"\nallow_unconfirmed = false\n'
    head, _, tail = text.partition("[retention]")
    tail = re.sub(r"(?m)^presets = .*$", lambda _m: f"presets = {listed}", tail, count=1)
    tail = re.sub(
        r"(?m)^allow_unconfirmed = .*$",
        lambda _m: f"allow_unconfirmed = {str(allow_unconfirmed).lower()}",
        tail,
        count=1,
    )
    if approval is not None:
        if re.search(r"(?m)^approval = .*$", tail):
            tail = re.sub(r"(?m)^approval = .*$", lambda _m: f'approval = "{approval}"', tail, count=1)
        else:
            tail = tail.replace("\n", f'\napproval = "{approval}"\n', 1)
    new = head + "[retention]" + tail
    parse_config(new)  # never write a config that does not load
    write_atomic(path, new.encode("utf-8"))


def pin_decision_key(path: Path, key: DecisionKey) -> None:
    """Set [archive] decision_key in config.toml (after `recipient = …`, or replacing the line), keeping
    every comment; the result is parsed before it is written."""
    text = path.read_text(encoding="utf-8")
    line = f'decision_key = "{key.encode()}"'
    if re.search(r"(?m)^decision_key = .*$", text):
        new = re.sub(r"(?m)^decision_key = .*$", lambda _m: line, text, count=1)
    else:
        new = re.sub(r"(?m)^(recipient = .*)$", lambda m: m.group(1) + "\n" + line, text, count=1)
    if parse_config(new).decision_key != key:
        raise ConfigError("config.toml could not be given the archive's decision key")
    write_atomic(path, new.encode("utf-8"))


def render_config(archive_id: str, recipient: Recipient) -> str:
    """The commented default config (scanarchive/data/default.toml) with this archive's values filled in."""
    template = TEMPLATE.read_text(encoding="utf-8")
    return template.replace("{archive_id}", archive_id).replace("{recipient}", recipient.encode())
