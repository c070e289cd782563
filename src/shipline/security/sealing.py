"""Secret values at rest: AES-256-GCM under a master key, bound to where they belong.

Each value is sealed with a fresh 96-bit nonce; the associated data names the project,
environment and secret, so a ciphertext copied to another row (another project, another
name) fails to open instead of handing out the wrong secret. A `Keyring` holds the current
master key (new values are sealed under it) and may hold older ones, found by key id, so
that a rotation interrupted half-way still opens every value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shipline.domain.errors import ShiplineError

KEY_BYTES = 32
NONCE_BYTES = 12
_AAD_PREFIX = b"shipline-secret:v1"


class SealError(ShiplineError):
    """A sealed value that cannot be opened (unknown key, altered or moved ciphertext)."""


@dataclass(frozen=True, slots=True)
class MasterKey:
    """A 256-bit AES key; `id` (a digest of it, not secret) says which key sealed a value."""

    key: bytes

    def __post_init__(self) -> None:
        if len(self.key) != KEY_BYTES:
            raise ValueError(f"a master key is {KEY_BYTES} bytes, got {len(self.key)}")

    @property
    def id(self) -> str:
        return hashlib.sha256(b"shipline-key-id:" + self.key).hexdigest()[:16]

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(AESGCM.generate_key(bit_length=256))

    @classmethod
    def from_text(cls, text: str, where: str) -> MasterKey:
        """A key written as base64 (standard or URL-safe) of 32 bytes; `where` names the
        source in the error."""
        value = text.strip()
        try:
            raw = base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_")
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != KEY_BYTES:
            raise SealError(
                f"{where}: expected the base64 of a {KEY_BYTES}-byte key "
                f"(make one with `head -c 32 /dev/urandom | base64`)"
            )
        return cls(raw)

    def to_text(self) -> str:
        return base64.b64encode(self.key).decode()


@dataclass(frozen=True, slots=True)
class Sealed:
    """A sealed value as stored: which key, the nonce, and ciphertext with its GCM tag."""

    key_id: str
    nonce: bytes
    ciphertext: bytes


def associated_data(project_id: int, environment: str, name: str) -> bytes:
    """What a sealed value is bound to (never stored, recomputed when opening)."""
    return b"\0".join((_AAD_PREFIX, str(project_id).encode(), environment.encode(), name.encode()))


class Keyring:
    """The current master key and any older ones still needed to open values."""

    def __init__(self, current: MasterKey, older: tuple[MasterKey, ...] = ()) -> None:
        self.current = current
        self._keys = {k.id: k for k in (*older, current)}

    def knows(self, key_id: str) -> bool:
        return key_id in self._keys

    def seal(self, value: str, aad: bytes) -> Sealed:
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = AESGCM(self.current.key).encrypt(nonce, value.encode(), aad)
        return Sealed(self.current.id, nonce, ciphertext)

    def open(self, sealed: Sealed, aad: bytes) -> str:
        key = self._keys.get(sealed.key_id)
        if key is None:
            raise SealError(
                f"the value was sealed under master key {sealed.key_id}, which this server "
                "does not have"
            )
        try:
            plain = AESGCM(key.key).decrypt(sealed.nonce, sealed.ciphertext, aad)
        except InvalidTag:
            raise SealError("the sealed value was altered or belongs elsewhere") from None
        return plain.decode()
