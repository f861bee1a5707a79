"""The sealed blob format: round trips and every kind of damage."""

from __future__ import annotations

import io
import os
import uuid

import pytest

from scanarchive.crypto import seal
from scanarchive.errors import IntegrityError

KEY = bytes(range(32))
RID = uuid.UUID("12345678-1234-5678-1234-567812345678").bytes


def _blob(pdf: bytes, ocr: bytes = b'{"x":1}') -> bytes:
    return seal.seal(KEY, RID, {"pdf": pdf, "ocr": ocr}, salt=bytes(16))


@pytest.mark.parametrize("size", [0, 1, seal.CHUNK - 1, seal.CHUNK, seal.CHUNK + 1, 3 * seal.CHUNK + 7])
def test_round_trip_every_chunk_edge(size: int) -> None:
    pdf = os.urandom(size)
    blob = _blob(pdf)
    assert seal.open_blob(blob, KEY, RID) == {"pdf": pdf, "ocr": b'{"x":1}'}
    assert len(blob) == seal.read_header(io.BytesIO(blob)).total_length


def test_ciphertext_does_not_contain_plaintext() -> None:
    pdf = b"insomnia rumination " * 5000
    blob = _blob(pdf)
    assert b"insomnia" not in blob


def test_each_section_has_its_own_key() -> None:
    header = seal.read_header(io.BytesIO(_blob(b"a")))
    keys = {seal.derive(KEY, header.salt, p) for p in ("header", "pdf", "ocr")}
    assert len(keys) == 3


def test_one_section_opens_without_the_other() -> None:
    blob = _blob(os.urandom(200_000), b"ocr-json")
    assert seal.open_section(io.BytesIO(blob), KEY, RID, "ocr") == b"ocr-json"


def _flip(blob: bytes, at: int) -> bytes:
    b = bytearray(blob)
    b[at] ^= 0x01
    return bytes(b)


def _damage_cases() -> dict[str, object]:
    return {
        "header magic": lambda b, h: _flip(b, 0),
        "header record id": lambda b, h: _flip(b, 10),
        "section length": lambda b, h: _flip(b, 45),
        "header mac": lambda b, h: _flip(b, len(h.raw) - 1),
        "first chunk": lambda b, h: _flip(b, len(h.raw) + 3),
        "chunk boundary": lambda b, h: _flip(b, len(h.raw) + seal.CHUNK + seal.TAG),
        "last byte": lambda b, h: _flip(b, len(b) - 1),
        "drop last chunk": lambda b, h: b[: len(b) - (len(b) - len(h.raw) - 2 * (seal.CHUNK + seal.TAG))],
        "truncate one byte": lambda b, h: b[:-1],
        "append byte": lambda b, h: b + b"\0",
        "swap chunks": lambda b, h: (
            b[: len(h.raw)]
            + b[len(h.raw) + seal.CHUNK + seal.TAG : len(h.raw) + 2 * (seal.CHUNK + seal.TAG)]
            + b[len(h.raw) : len(h.raw) + seal.CHUNK + seal.TAG]
            + b[len(h.raw) + 2 * (seal.CHUNK + seal.TAG) :]
        ),
    }


@pytest.mark.parametrize("case", sorted(_damage_cases()))
def test_damage_is_detected(case: str) -> None:
    blob = _blob(os.urandom(3 * seal.CHUNK + 100), b"ocr")
    header = seal.read_header(io.BytesIO(blob))
    damaged = _damage_cases()[case](blob, header)  # type: ignore[operator]
    assert damaged != blob
    with pytest.raises(IntegrityError):
        seal.open_blob(damaged, KEY, RID)


def test_blob_of_another_record_is_refused() -> None:
    blob = _blob(b"pdf")
    with pytest.raises(IntegrityError, match=r"another record|authentication"):
        seal.open_blob(blob, KEY, uuid.uuid4().bytes)


def test_wrong_key_is_refused() -> None:
    with pytest.raises(IntegrityError):
        seal.open_blob(_blob(b"pdf"), os.urandom(32), RID)


def test_unknown_version_is_refused_not_guessed() -> None:
    blob = bytearray(_blob(b"pdf"))
    blob[7] = 2
    with pytest.raises(IntegrityError, match="version 2"):
        seal.read_header(io.BytesIO(bytes(blob)))


def test_not_a_blob() -> None:
    with pytest.raises(IntegrityError, match="magic"):
        seal.read_header(io.BytesIO(b"%PDF-1.7 hello"))
