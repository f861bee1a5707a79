"""Sealed objects: putting them into a BlobStore, checking and opening them.

This is the one place where a sealed object (a record's blob in objects/, a
quarantined scan's in quarantine/) is sealed and stored, read back, checked
against its name, and opened. Opening ALWAYS checks the blob's SHA-256 against
its name before decrypting (docs/format.md §18, invariant 6), so damage
anywhere in the blob is reported, even in a section the read does not need.

Every key that is wrapped to the recipient is wrapped with a context naming
what it opens, so a wrapped key copied to another row fails to unwrap
(docs/format.md §4). All contexts are defined here, side by side.

Messages name the object by its id (never by content), exactly as
docs/errors.md lists them.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from scanarchive.archive.store import BlobStore
from scanarchive.crypto import keys, seal
from scanarchive.errors import IntegrityError

Owner = Literal["record", "quarantine"]
"""What a sealed object belongs to: a record (objects/) or a quarantined scan (quarantine/)."""


def record_context(record_id: str) -> bytes:
    """What a record key is wrapped with (binds the wrapped key to its record)."""
    return b"record:" + uuid.UUID(record_id).bytes


def quarantine_context(entry_id: str) -> bytes:
    """What a quarantined scan's key is wrapped with."""
    return b"quarantine:" + uuid.UUID(entry_id).bytes


def quarantine_name_context(entry_id: str) -> bytes:
    """What a quarantined scan's original file name is sealed with (file names may name a client)."""
    return b"quarantine-name:" + uuid.UUID(entry_id).bytes


def index_context(generation: int) -> bytes:
    """What the search index key of one generation is wrapped with."""
    return b"index:" + str(generation).encode()


# --- messages (docs/errors.md) ------------------------------------------------


def _name(owner: Owner, object_id: str) -> str:
    return f"record {object_id}" if owner == "record" else f"quarantined scan {object_id}"


def _missing(owner: Owner, object_id: str) -> str:
    if owner == "record":
        return f"record {object_id}: its blob is missing from objects/"
    return f"quarantined scan {object_id}: its sealed copy is missing from quarantine/"


def _mismatch(owner: Owner, object_id: str) -> str:
    if owner == "record":
        return f"record {object_id}: its blob is damaged (hash mismatch)"
    return f"quarantined scan {object_id}: its sealed copy is damaged (hash mismatch)"


def _damaged_on_open(owner: Owner, object_id: str) -> str:
    if owner == "record":
        return f"record {object_id}: its blob is damaged (its SHA-256 does not match its name)"
    return f"quarantined scan {object_id}: its sealed copy is damaged (its SHA-256 does not match its name)"


def _not_written(owner: Owner, object_id: str) -> str:
    if owner == "record":
        return f"record {object_id}: the stored blob does not match what was written"
    return "the quarantined copy does not read back correctly"


def _not_sealed(owner: Owner, object_id: str) -> str:
    if owner == "record":
        return f"record {object_id}: the stored blob does not decrypt to what was sealed"
    return "the quarantined copy does not read back correctly"


# --- writing ------------------------------------------------------------------


@dataclass(frozen=True)
class Written:
    """A sealed object just stored: its blob's SHA-256 and size, and the SHA-256 of each section's
    plaintext, taken while sealing, for read_back (so the plaintext need not be kept)."""

    digest: str
    size: int
    plaintext_sha256: dict[str, bytes]


def seal_into(store: BlobStore, key: bytes, object_id: str, sections: dict[str, bytes]) -> Written:
    """Seal `sections` under `key` (fresh salt) chunk by chunk straight into the store. Not yet read back.
    Memory stays bounded (a chunk and a write buffer): the blob is never held whole."""
    plain = {kind: hashlib.sha256(data).digest() for kind, data in sections.items()}
    salt = os.urandom(16)
    rid = uuid.UUID(object_id).bytes
    digest, size = store.put_stream(lambda out: seal.seal_to(out, key, rid, sections, salt))
    return Written(digest, size, plain)


def read_back(
    store: BlobStore,
    digest: str,
    key: bytes,
    object_id: str,
    plaintext_sha256: Mapping[str, bytes],
    *,
    owner: Owner = "record",
) -> None:
    """Re-read the blob from disk, chunk by chunk: it must hash to its name, and its sections must
    decrypt to plaintexts with exactly these SHA-256s (`Written.plaintext_sha256`)."""
    rid = uuid.UUID(object_id).bytes
    with store.open(digest) as fp:
        h = hashlib.sha256()
        for block in iter(lambda: fp.read(1 << 20), b""):
            h.update(block)
        if h.hexdigest() != digest:
            raise IntegrityError(_not_written(owner, object_id))
        opened: dict[str, bytes] = {}
        for kind, _ in seal.read_header(fp).sections:
            section = hashlib.sha256()
            for chunk in seal.iter_section(fp, key, rid, kind):
                section.update(chunk)
            opened[kind] = section.digest()
    if opened != dict(plaintext_sha256):
        raise IntegrityError(_not_sealed(owner, object_id))


def put(
    store: BlobStore,
    key: bytes,
    object_id: str,
    sections: dict[str, bytes],
    *,
    owner: Owner = "record",
) -> tuple[str, int]:
    """Seal, store, read back and check; (the blob's SHA-256, its size). Damage raises IntegrityError."""
    written = seal_into(store, key, object_id, sections)
    read_back(store, written.digest, key, object_id, written.plaintext_sha256, owner=owner)
    return written.digest, written.size


# --- checking and opening -----------------------------------------------------


def check(store: BlobStore, digest: str, object_id: str, *, owner: Owner = "record") -> None:
    """Without a key: the blob exists and hashes to its name."""
    try:
        actual = store.hash_of(digest)
    except FileNotFoundError as exc:
        raise IntegrityError(_missing(owner, object_id)) from exc
    if actual != digest:
        raise IntegrityError(_mismatch(owner, object_id))


def _read_checked(store: BlobStore, digest: str, object_id: str, owner: Owner) -> bytes:
    try:
        data = store.get(digest)
    except IntegrityError as exc:
        if owner == "quarantine":
            raise IntegrityError(_missing(owner, object_id)) from exc
        raise IntegrityError(f"{_name(owner, object_id)}: {exc.message}", hint=exc.hint) from exc
    if hashlib.sha256(data).hexdigest() != digest:
        # Checked before decrypting (invariant 6): damage anywhere in the blob is
        # reported, even in a section this read does not need.
        raise IntegrityError(_damaged_on_open(owner, object_id))
    return data


def open_section(
    store: BlobStore, digest: str, key: bytes, object_id: str, kind: str, *, owner: Owner = "record"
) -> bytes:
    """Hash-check the whole blob, then decrypt one section; damage raises IntegrityError naming the object."""
    data = _read_checked(store, digest, object_id, owner)
    try:
        return seal.open_section(io.BytesIO(data), key, uuid.UUID(object_id).bytes, kind)
    except IntegrityError as exc:
        raise IntegrityError(f"{_name(owner, object_id)}: {exc.message}", hint=exc.hint) from exc


def open_all(store: BlobStore, digest: str, key: bytes, object_id: str, *, owner: Owner = "record") -> dict[str, bytes]:
    """Hash-check the whole blob, then decrypt and authenticate every section, in stream order."""
    data = _read_checked(store, digest, object_id, owner)
    try:
        return seal.open_blob(data, key, uuid.UUID(object_id).bytes)
    except IntegrityError as exc:
        raise IntegrityError(f"{_name(owner, object_id)}: {exc.message}", hint=exc.hint) from exc


# --- free text in catalog columns ---------------------------------------------------------------

SEALED_TEXT: Final = "sealed-1:"
"""A catalog column holding free text a person typed or a file was named (a hold's reason, a
quarantined scan's file name) stores "sealed-1:" + base64url(keys.seal_text(text, recipient, context)),
unpadded: only the identity reads it; the unattended jobs never need it (docs/format.md §15.5)."""


def seal_text(recipient: keys.Recipient, context: bytes, text: str) -> str:
    return SEALED_TEXT + base64.urlsafe_b64encode(keys.seal_text(text, recipient, context)).decode().rstrip("=")


def is_sealed_text(stored: str) -> bool:
    return stored.startswith(SEALED_TEXT)


def open_text(identity: keys.Identity, context: bytes, stored: str) -> str:
    """The text; a value written before such columns were sealed is returned as it is."""
    if not is_sealed_text(stored):
        return stored
    body = stored[len(SEALED_TEXT) :]
    return identity.open_text(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)), context)
