"""Identity file, passphrases and key wrapping."""

from __future__ import annotations

import json
import os

import pytest

from scanarchive.crypto import keys
from scanarchive.errors import IntegrityError, UsageError, WrongPassphrase


def test_identity_round_trip_and_wrong_passphrase() -> None:
    identity = keys.Identity.generate()
    data = keys.seal_identity(identity, "pass phrase", keys.MIN_LOG_N)
    assert b"pass phrase" not in data
    opened = keys.open_identity(data, "pass phrase")
    assert opened.recipient == identity.recipient
    with pytest.raises(WrongPassphrase):
        keys.open_identity(data, "pass phrasE")


def test_identity_parameters_are_authenticated() -> None:
    identity = keys.Identity.generate()
    doc = json.loads(keys.seal_identity(identity, "pw", keys.MIN_LOG_N))
    doc["kdf"]["log_n"] = keys.MIN_LOG_N + 1
    with pytest.raises(WrongPassphrase):
        keys.open_identity(json.dumps(doc).encode(), "pw")


def test_identity_unknown_version_refused() -> None:
    doc = json.loads(keys.seal_identity(keys.Identity.generate(), "pw", keys.MIN_LOG_N))
    doc["version"] = 99
    with pytest.raises(IntegrityError, match="version 99"):
        keys.open_identity(json.dumps(doc).encode(), "pw")


def test_empty_passphrase_refused() -> None:
    with pytest.raises(UsageError):
        keys.seal_identity(keys.Identity.generate(), "", keys.MIN_LOG_N)


def test_calibration_respects_floor_and_target() -> None:
    assert keys.calibrate_log_n(0.0) == keys.MIN_LOG_N
    assert keys.calibrate_log_n(0.5) > keys.MIN_LOG_N


def test_wrap_needs_only_the_recipient_and_binds_context() -> None:
    identity = keys.Identity.generate()
    recipient = keys.Recipient.decode(identity.recipient.encode())
    key = os.urandom(32)
    wrapped = keys.wrap(key, recipient, b"record:1")
    assert key not in wrapped
    assert identity.unwrap(wrapped, b"record:1") == key
    with pytest.raises(IntegrityError):
        identity.unwrap(wrapped, b"record:2")
    with pytest.raises(IntegrityError):
        keys.Identity.generate().unwrap(wrapped, b"record:1")
    damaged = bytearray(wrapped)
    damaged[40] ^= 1
    with pytest.raises(IntegrityError):
        identity.unwrap(bytes(damaged), b"record:1")


def test_every_wrap_is_different() -> None:
    recipient = keys.Identity.generate().recipient
    key = os.urandom(32)
    assert keys.wrap(key, recipient, b"c") != keys.wrap(key, recipient, b"c")
