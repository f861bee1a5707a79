"""The archive identity (X25519), its passphrase protection, and key wrapping.

Normative description: docs/format.md, sections "Identity file" and
"Wrapped keys". Only primitives from `cryptography` are used.

SECURITY: the private key and the passphrase live only in the memory of an
interactive command. Nothing in this module logs or raises with their bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from scanarchive.errors import ConfigError, IdentityUnavailable, IntegrityError, UsageError, WrongPassphrase

RECIPIENT_PREFIX = "scanarchive-recipient-1:"
IDENTITY_FORMAT = "scanarchive-identity"
IDENTITY_VERSION = 1
WRAP_VERSION = 1
WRAPPED_LEN = 1 + 32 + 32 + 16  # version, ephemeral public key, key ciphertext, tag
_WRAP_INFO = b"scanarchive v1 wrap"
_ZERO_NONCE = bytes(12)
DECISION_KEY_PREFIX = "scanarchive-decisionkey-1:"
_SIGNING_INFO = b"scanarchive v1 decision signing key"  # HKDF info: Ed25519 seed from the X25519 key
_BINDING_INFO = b"scanarchive v1 record binding key"  # HKDF info: HMAC key of record bindings
_TEXT_AD = b"scanarchive-text-v1\x00"  # associated-data prefix of a sealed text (seal_text)

# scrypt: r=8, p=1; log2(N) chosen at init so that one derivation takes the
# target time on this machine (restic and age calibrate the same way).
SCRYPT_R = 8
SCRYPT_P = 1
MIN_LOG_N = 14  # floor even for tests: 16 MiB of memory per guess
MAX_LOG_N = 22


def _raw_public(pub: X25519PublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _encode_key(prefix: str, public: bytes) -> str:
    return prefix + base64.urlsafe_b64encode(public).decode().rstrip("=")


def _decode_key(prefix: str, text: str, what: str) -> bytes:
    """The 32 raw bytes of a public key written as `prefix` + unpadded base64url (ConfigError naming `what`)."""
    if not text.startswith(prefix):
        raise ConfigError(f"{what} is not in a form this version knows")
    body = text[len(prefix) :]
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
    except ValueError as exc:
        raise ConfigError(f"{what} is damaged") from exc
    if len(raw) != 32:
        raise ConfigError(f"{what} is damaged")
    return raw


@dataclass(frozen=True)
class Recipient:
    """The archive's public key: all that ingest needs."""

    public: bytes  # 32 raw bytes

    @property
    def key_id(self) -> str:
        """First 8 bytes of SHA-256 of the public key, hex: names the wrapping key (Tink)."""
        return hashlib.sha256(self.public).hexdigest()[:16]

    def encode(self) -> str:
        return _encode_key(RECIPIENT_PREFIX, self.public)

    @classmethod
    def decode(cls, text: str) -> Recipient:
        return cls(_decode_key(RECIPIENT_PREFIX, text, "the archive's recipient (public key)"))


@dataclass(frozen=True)
class DecisionKey:
    """The Ed25519 public key that verifies the owner's decisions (docs/format.md §15.5)."""

    public: bytes  # 32 raw bytes

    def encode(self) -> str:
        return _encode_key(DECISION_KEY_PREFIX, self.public)

    @classmethod
    def decode(cls, text: str) -> DecisionKey:
        return cls(_decode_key(DECISION_KEY_PREFIX, text, "the archive's decision key"))

    def verifies(self, signature: bytes, message: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


def seal_text(text: str, recipient: Recipient, context: bytes) -> bytes:
    """Free text sealed to the recipient: a fresh 32-byte key wrapped with context "text:" || context,
    then ChaCha20-Poly1305 (zero nonce: the key encrypts this one text only) with associated data
    "scanarchive-text-v1\\0" || context. Returns wrapped (81 bytes) || ciphertext || tag."""
    key = os.urandom(32)
    body = ChaCha20Poly1305(key).encrypt(_ZERO_NONCE, text.encode("utf-8"), _TEXT_AD + context)
    return wrap(key, recipient, b"text:" + context) + body


class Identity:
    """The archive's private key, unlocked in memory."""

    def __init__(self, private: X25519PrivateKey) -> None:
        self._private = private

    @classmethod
    def generate(cls) -> Identity:
        return cls(X25519PrivateKey.generate())

    @property
    def recipient(self) -> Recipient:
        return Recipient(_raw_public(self._private.public_key()))

    def _raw(self) -> bytes:
        return self._private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )

    def _derived(self, info: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(self._raw())

    def _signer(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self._derived(_SIGNING_INFO))

    @property
    def decision_key(self) -> DecisionKey:
        """The public half of the signing key derived from this identity (no identity-format change)."""
        return DecisionKey(
            self._signer().public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )

    def sign(self, message: bytes) -> bytes:
        """Ed25519 signature (64 bytes) with the derived decision signing key."""
        return self._signer().sign(message)

    def binding_mac(self, message: bytes) -> bytes:
        """HMAC-SHA256 under the derived record-binding key."""
        mac = hmac.HMAC(self._derived(_BINDING_INFO), hashes.SHA256())
        mac.update(message)
        return mac.finalize()

    def open_text(self, sealed: bytes, context: bytes) -> str:
        """Open a text sealed by seal_text with the same context."""
        key = self.unwrap(sealed[:WRAPPED_LEN], b"text:" + context)
        try:
            return ChaCha20Poly1305(key).decrypt(_ZERO_NONCE, sealed[WRAPPED_LEN:], _TEXT_AD + context).decode("utf-8")
        except (InvalidTag, UnicodeDecodeError) as exc:
            raise IntegrityError("a sealed text is damaged or belongs elsewhere") from exc

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        """Open a key wrapped to this identity; `context` must be what it was wrapped with."""
        if len(wrapped) != WRAPPED_LEN or wrapped[0] != WRAP_VERSION:
            raise IntegrityError("a wrapped key is damaged or of an unknown version")
        eph_pub = wrapped[1:33]
        try:
            shared = self._private.exchange(X25519PublicKey.from_public_bytes(eph_pub))
        except ValueError as exc:  # low-order point: a forged key
            raise IntegrityError("a wrapped key is damaged") from exc
        wrap_key = _wrap_key(shared, eph_pub, self.recipient.public)
        try:
            return ChaCha20Poly1305(wrap_key).decrypt(_ZERO_NONCE, wrapped[33:], _wrap_aad(context))
        except InvalidTag as exc:
            raise IntegrityError("a wrapped key does not open: it is damaged or belongs elsewhere") from exc


def _wrap_key(shared: bytes, eph_pub: bytes, recipient_pub: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=eph_pub + recipient_pub, info=_WRAP_INFO).derive(shared)


def _wrap_aad(context: bytes) -> bytes:
    return b"scanarchive-wrap-v1\x00" + context


def wrap(key: bytes, recipient: Recipient, context: bytes) -> bytes:
    """Wrap a 32-byte key to the recipient (ephemeral X25519 -> HKDF -> ChaCha20-Poly1305).

    `context` (for a record key: its record id) is bound as associated data, so
    a wrapped key copied onto another record's row does not open.
    The zero nonce is safe: every wrap key comes from a fresh ephemeral key.
    """
    if len(key) != 32:
        raise ValueError("only 32-byte keys are wrapped")
    eph = X25519PrivateKey.generate()
    eph_pub = _raw_public(eph.public_key())
    shared = eph.exchange(X25519PublicKey.from_public_bytes(recipient.public))
    body = ChaCha20Poly1305(_wrap_key(shared, eph_pub, recipient.public)).encrypt(_ZERO_NONCE, key, _wrap_aad(context))
    return bytes([WRAP_VERSION]) + eph_pub + body


# --- passphrase protection of the identity -------------------------------


def passphrase_key(passphrase: str, salt: bytes, log_n: int) -> bytes:
    """32 bytes from a passphrase: scrypt(N = 2^log_n, r = 8, p = 1) over its UTF-8 bytes."""
    return Scrypt(salt=salt, length=32, n=1 << log_n, r=SCRYPT_R, p=SCRYPT_P).derive(passphrase.encode("utf-8"))


def calibrate_log_n(target_seconds: float) -> int:
    """Smallest log2(N) >= MIN_LOG_N whose derivation takes at least target_seconds here."""
    log_n = MIN_LOG_N
    start = time.perf_counter()
    passphrase_key("calibration", bytes(16), log_n)
    elapsed = max(time.perf_counter() - start, 1e-4)
    while elapsed < target_seconds and log_n < MAX_LOG_N:
        log_n += 1
        elapsed *= 2  # scrypt cost is linear in N
    return log_n


def _identity_aad(doc: dict[str, object]) -> bytes:
    # Everything but the ciphertext is authenticated: changing the KDF
    # parameters or the recipient makes the file fail to open.
    fields = {k: v for k, v in doc.items() if k != "ciphertext"}
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def seal_identity(identity: Identity, passphrase: str, log_n: int) -> bytes:
    """The identity file's bytes (JSON), its private key encrypted under the passphrase."""
    if not passphrase:
        raise UsageError("an empty passphrase is not allowed", hint="Choose a passphrase of several words.")
    salt = os.urandom(16)
    nonce = os.urandom(12)
    doc: dict[str, object] = {
        "format": IDENTITY_FORMAT,
        "version": IDENTITY_VERSION,
        "kdf": {"name": "scrypt", "log_n": log_n, "r": SCRYPT_R, "p": SCRYPT_P, "salt": salt.hex()},
        "aead": "chacha20-poly1305",
        "nonce": nonce.hex(),
        "recipient": identity.recipient.encode(),
    }
    key = passphrase_key(passphrase, salt, log_n)
    doc["ciphertext"] = ChaCha20Poly1305(key).encrypt(nonce, identity._raw(), _identity_aad(doc)).hex()
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def open_identity(data: bytes, passphrase: str) -> Identity:
    """Unlock an identity file. Wrong passphrase -> WrongPassphrase; damage -> IntegrityError."""
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("format") != IDENTITY_FORMAT:
            raise IntegrityError("identity.enc is not a scanarchive identity file")
        if doc.get("version") != IDENTITY_VERSION:
            raise IntegrityError(
                f"identity.enc has format version {doc.get('version')!r}, which this scanarchive does not know",
                hint="Use the scanarchive version that wrote it, or a newer one.",
            )
        kdf = doc["kdf"]
        if kdf["name"] != "scrypt" or kdf["r"] != SCRYPT_R or kdf["p"] != SCRYPT_P:
            raise IntegrityError("identity.enc names key-derivation settings this version does not accept")
        log_n = int(kdf["log_n"])
        if not MIN_LOG_N <= log_n <= MAX_LOG_N:
            raise IntegrityError("identity.enc names key-derivation settings this version does not accept")
        salt = bytes.fromhex(kdf["salt"])
        nonce = bytes.fromhex(doc["nonce"])
        ciphertext = bytes.fromhex(doc["ciphertext"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise IntegrityError("identity.enc is damaged (it cannot be read)") from exc
    key = passphrase_key(passphrase, salt, log_n)
    try:
        raw = ChaCha20Poly1305(key).decrypt(nonce, ciphertext, _identity_aad(doc))
    except InvalidTag as exc:
        # A wrong passphrase and an edited file look the same to the AEAD.
        raise WrongPassphrase("the passphrase does not unlock this archive (or identity.enc was altered)") from exc
    identity = Identity(X25519PrivateKey.from_private_bytes(raw))
    if identity.recipient.encode() != doc["recipient"]:
        raise IntegrityError("identity.enc is damaged: its key does not match its recipient")
    return identity


def identity_kdf_log_n(data: bytes) -> int:
    """The scrypt cost (log2 N) an identity file was sealed with, so a new passphrase keeps it."""
    try:
        doc = json.loads(data)
        return int(doc["kdf"]["log_n"])
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError("identity.enc is damaged (it cannot be read)") from exc


def load_identity(path: Path, passphrase: str) -> Identity:
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise IdentityUnavailable(f"the identity file {path} is missing") from exc
    return open_identity(data, passphrase)
