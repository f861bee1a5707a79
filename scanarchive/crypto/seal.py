"""The sealed record format: a versioned header and STREAM-chunked AEAD sections.

Normative description: docs/format.md, section "Sealed blob". In short:

    header  = "SCANARC" | version u8 | record id (16) | salt (16)
              | section count u8 | (kind u8 | plaintext length u64be)*
              | HMAC-SHA256(K_header, everything before)
    section = ChaCha20-Poly1305 chunks of 64 KiB plaintext; nonce =
              counter (11 bytes, big-endian) | last-chunk flag (1 byte)

Keys: K_purpose = HKDF-SHA256(record key, salt, "scanarchive v1 " + purpose).
Each chunk's associated data is magic | version | record id, so a blob moved
onto another record, or read as another version, fails to open.

SECURITY: do not "simplify" the last-chunk flag or the length in the header;
together they are what makes truncation and reordering detectable.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from scanarchive.errors import IntegrityError

MAGIC = b"SCANARC"
VERSION = 1
CHUNK = 64 * 1024
TAG = 16
SALT_LEN = 16
MAC_LEN = 32
SECTION_KINDS: dict[str, int] = {"pdf": 1, "ocr": 2, "original": 3}  # original: a quarantined scan
_KIND_NAMES = {v: k for k, v in SECTION_KINDS.items()}
_FIXED = struct.Struct(">7sB16s16sB")  # magic, version, record id, salt, section count
_SECTION = struct.Struct(">BQ")  # kind, plaintext length
MAX_COUNTER = 1 << 88


class SealError(IntegrityError):
    """A blob failed to parse or authenticate."""


def derive(record_key: bytes, salt: bytes, purpose: str) -> bytes:
    """A per-purpose key: purposes never share a key (domain separation)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"scanarchive v1 " + purpose.encode()).derive(
        record_key
    )


@dataclass(frozen=True)
class Header:
    version: int
    record_id: bytes
    salt: bytes
    sections: tuple[tuple[str, int], ...]  # (kind, plaintext length), in stream order
    raw: bytes  # the header bytes including the MAC

    @property
    def aad(self) -> bytes:
        return MAGIC + bytes([self.version]) + self.record_id

    def offset_of(self, kind: str) -> tuple[int, int]:
        """(byte offset of the section's stream, plaintext length)."""
        offset = len(self.raw)
        for name, length in self.sections:
            if name == kind:
                return offset, length
            offset += stream_length(length)
        raise SealError(f"the blob has no {kind} section")

    @property
    def total_length(self) -> int:
        return len(self.raw) + sum(stream_length(n) for _, n in self.sections)


def chunk_count(plaintext_length: int) -> int:
    return max(1, -(-plaintext_length // CHUNK))


def stream_length(plaintext_length: int) -> int:
    return plaintext_length + chunk_count(plaintext_length) * TAG


def _nonce(counter: int, last: bool) -> bytes:
    if counter >= MAX_COUNTER:
        raise ValueError("stream too long")
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def seal(record_key: bytes, record_id: bytes, sections: dict[str, bytes], salt: bytes) -> bytes:
    """Seal the given sections into one blob (bytes). `salt` must be fresh random bytes."""
    out = io.BytesIO()
    seal_to(out, record_key, record_id, sections, salt)
    return out.getvalue()


def seal_to(out: BinaryIO, record_key: bytes, record_id: bytes, sections: dict[str, bytes], salt: bytes) -> None:
    if len(record_key) != 32 or len(record_id) != 16 or len(salt) != SALT_LEN:
        raise ValueError("record key, record id or salt has the wrong length")
    head = _FIXED.pack(MAGIC, VERSION, record_id, salt, len(sections))
    for kind, data in sections.items():
        head += _SECTION.pack(SECTION_KINDS[kind], len(data))
    head += hmac.new(derive(record_key, salt, "header"), head, hashlib.sha256).digest()
    out.write(head)
    aad = MAGIC + bytes([VERSION]) + record_id
    for kind, data in sections.items():
        aead = ChaCha20Poly1305(derive(record_key, salt, kind))
        n = chunk_count(len(data))
        view = memoryview(data)
        for i in range(n):
            chunk = bytes(view[i * CHUNK : (i + 1) * CHUNK])
            out.write(aead.encrypt(_nonce(i, i == n - 1), chunk, aad))


def read_header(fp: BinaryIO) -> Header:
    """Parse (not yet authenticate) the header. Unknown versions are refused, never guessed."""
    fp.seek(0)
    fixed = fp.read(_FIXED.size)
    if len(fixed) < 8 or fixed[:7] != MAGIC:
        raise SealError("it is not a scanarchive sealed blob (wrong magic bytes)")
    if fixed[7] != VERSION:
        raise SealError(
            f"it has format version {fixed[7]}, which this scanarchive does not know",
            hint="Use the scanarchive version that wrote it, or a newer one. Nothing was changed.",
        )
    if len(fixed) < _FIXED.size:
        raise SealError("the blob is truncated inside its header")
    _, version, record_id, salt, count = _FIXED.unpack(fixed)
    if not 1 <= count <= len(SECTION_KINDS):
        raise SealError("the blob's header is damaged (section count)")
    table = fp.read(_SECTION.size * count)
    mac = fp.read(MAC_LEN)
    if len(table) < _SECTION.size * count or len(mac) < MAC_LEN:
        raise SealError("the blob is truncated inside its header")
    sections: list[tuple[str, int]] = []
    for i in range(count):
        kind, length = _SECTION.unpack_from(table, i * _SECTION.size)
        if kind not in _KIND_NAMES or any(name == _KIND_NAMES[kind] for name, _ in sections):
            raise SealError("the blob's header is damaged (section table)")
        sections.append((_KIND_NAMES[kind], length))
    return Header(version, record_id, salt, tuple(sections), fixed + table + mac)


def authenticate_header(header: Header, record_key: bytes, record_id: bytes) -> None:
    body, mac = header.raw[:-MAC_LEN], header.raw[-MAC_LEN:]
    expected = hmac.new(derive(record_key, header.salt, "header"), body, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise SealError("the blob's header fails authentication (damaged, or not this record's blob)")
    if header.record_id != record_id:
        raise SealError("the blob belongs to another record")


def open_section(fp: BinaryIO, record_key: bytes, record_id: bytes, kind: str) -> bytes:
    """Authenticate the header and decrypt one section; any damage raises SealError."""
    return b"".join(iter_section(fp, record_key, record_id, kind))


def iter_section(fp: BinaryIO, record_key: bytes, record_id: bytes, kind: str) -> Iterator[bytes]:
    """Like open_section, one decrypted chunk (64 KiB at most) at a time: memory stays bounded."""
    header = read_header(fp)
    authenticate_header(header, record_key, record_id)
    fp.seek(0, io.SEEK_END)
    size = fp.tell()
    if size < header.total_length:
        raise SealError("the blob is truncated (chunks are missing at its end)")
    if size > header.total_length:
        raise SealError("the blob has extra bytes after its last chunk")
    offset, length = header.offset_of(kind)
    aead = ChaCha20Poly1305(derive(record_key, header.salt, kind))
    n = chunk_count(length)
    for i in range(n):
        want = min(CHUNK, length - i * CHUNK) + TAG
        fp.seek(offset)  # the caller may move fp between chunks
        ct = fp.read(want)
        if len(ct) != want:
            raise SealError("the blob is truncated (chunks are missing at its end)")
        offset += want
        try:
            plain = aead.decrypt(_nonce(i, i == n - 1), ct, header.aad)
        except InvalidTag as exc:
            raise SealError(f"chunk {i + 1} of {n} of its {kind} section fails authentication") from exc
        yield plain


def open_blob(data: bytes, record_key: bytes, record_id: bytes) -> dict[str, bytes]:
    """Every section of an in-memory blob."""
    fp = io.BytesIO(data)
    header = read_header(fp)
    return {kind: open_section(fp, record_key, record_id, kind) for kind, _ in header.sections}
