"""The encrypted export file: one client's export (a tar) sealed under a passphrase.

Encrypted export (``--encrypt-to PASSPHRASE-FILE``): ONE file holding the same
members as an uncompressed POSIX tar, sealed with the project's own blob
format (scanarchive.crypto.seal) under a passphrase key:

    file   = "SCANEXP1" | log_n u8 | kdf salt (16) | export id (16) | sealed blob
    key    = scrypt(passphrase UTF-8, kdf salt, N = 2^log_n, r = 8, p = 1), 32 bytes
    blob   = seal(key, export id, {"original": tar}, fresh 16-byte seal salt)

The blob's header MAC binds the export id; log_n and the kdf salt are bound
implicitly (changing either changes the key, and the header MAC fails).
Readers accept log_n from 14 to 22 only (a forged huge N is refused before
any work). A header MAC that fails is reported as a wrong passphrase
(WrongPassphrase: it cannot be told apart from an altered file); damage after
a good header is an IntegrityError.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path
from typing import Final

from scanarchive.crypto import keys, seal
from scanarchive.errors import IntegrityError, UsageError, WrongPassphrase

EXPORT_MAGIC: Final = b"SCANEXP1"
EXPORT_LOG_N: Final = 17  # 128 MiB and roughly 0.3-1 s per guess
MIN_LOG_N: Final = keys.MIN_LOG_N
MAX_LOG_N: Final = keys.MAX_LOG_N
_HEADER: Final = struct.Struct(">8sB16s16s")  # magic, log_n, kdf salt, export id


def seal_export(content: bytes, passphrase: str, log_n: int = EXPORT_LOG_N) -> bytes:
    """The bytes of an encrypted export file holding `content` (the tar)."""
    if not passphrase:
        raise UsageError("an empty export passphrase is not allowed")
    if not MIN_LOG_N <= log_n <= MAX_LOG_N:
        raise ValueError("log_n out of range")
    salt, export_id = os.urandom(16), os.urandom(16)
    blob = seal.seal(
        keys.passphrase_key(passphrase, salt, log_n), export_id, {"original": content}, os.urandom(seal.SALT_LEN)
    )
    return _HEADER.pack(EXPORT_MAGIC, log_n, salt, export_id) + blob


def open_export_bytes(data: bytes, passphrase: str) -> bytes:
    """The tar inside an encrypted export. WrongPassphrase, or IntegrityError for damage."""
    if data[:7] == EXPORT_MAGIC[:7] and len(data) >= 8 and data[7:8] != EXPORT_MAGIC[7:8]:
        raise IntegrityError(
            "the export has a format version this scanarchive does not know",
            hint="Open it with the scanarchive version that wrote it, or a newer one.",
        )
    if len(data) < _HEADER.size or data[:8] != EXPORT_MAGIC:
        raise IntegrityError(
            "it is not a scanarchive encrypted export (wrong magic bytes)", hint="Check the file name."
        )
    _, log_n, salt, export_id = _HEADER.unpack_from(data)
    if not MIN_LOG_N <= log_n <= MAX_LOG_N:
        raise IntegrityError("the export's header is damaged (key-derivation setting out of range)")
    key = keys.passphrase_key(passphrase, salt, log_n)
    fp = io.BytesIO(data[_HEADER.size :])
    header = seal.read_header(fp)
    try:
        seal.authenticate_header(header, key, export_id)
    except seal.SealError as exc:
        if header.record_id != export_id:
            raise IntegrityError("the export's header is damaged (its id does not match)") from exc
        raise WrongPassphrase(
            "the passphrase does not open this export (or the file was altered)",
            hint="Nothing was written. Use the passphrase the export was made with; it is case-sensitive.",
        ) from exc
    return seal.open_section(fp, key, export_id, "original")


def open_export(path: Path, passphrase: str) -> bytes:
    """Read and decrypt an encrypted export file; return its tar bytes."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise UsageError(f"{path} does not exist") from exc
    except OSError as exc:
        raise UsageError(f"{path} cannot be read ({exc.strerror})") from exc
    return open_export_bytes(data, passphrase)
