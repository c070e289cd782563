"""API token strings: what a token looks like, how it is made, and how it is stored.

A token is `shp_<k>_<secret>`: `k` names its kind (`u` user, `j` job, `r` runner, `g`
runner registration) so that a token of one kind is refused where another is expected
(SECURITY-CASES 23), and `<secret>` is 32 bytes from `secrets.token_bytes` (256 bits) in
unpadded base64url (43 characters). Only `hash_secret(plaintext)` is stored; the
plaintext is shown once, at creation.

Pure: no I/O, no clock. `parse_kind` is strict, so that a string which is not exactly a
token's shape is never looked up, let alone accepted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets

from shipline.domain.records import TokenKind

PREFIX = "shp_"
SECRET_BYTES = 32
SECRET_CHARS = 43  # unpadded base64url of SECRET_BYTES
TOKEN_LENGTH = len(PREFIX) + 2 + SECRET_CHARS

KIND_LETTERS: dict[TokenKind, str] = {
    TokenKind.USER: "u",
    TokenKind.JOB: "j",
    TokenKind.RUNNER: "r",
    TokenKind.RUNNER_REGISTRATION: "g",
}
_KINDS_BY_LETTER = {letter: kind for kind, letter in KIND_LETTERS.items()}

_SHAPE = re.compile(rf"shp_([ujrg])_([A-Za-z0-9_-]{{{SECRET_CHARS}}})\Z", re.ASCII)


def new_token(kind: TokenKind) -> tuple[str, str]:
    """A fresh token of `kind`: `(plaintext, secret_hash)`. Store the hash, show the
    plaintext once."""
    secret = base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).rstrip(b"=").decode()
    plaintext = f"{PREFIX}{KIND_LETTERS[kind]}_{secret}"
    return plaintext, hash_secret(plaintext)


def hash_secret(plaintext: str) -> str:
    """What the store keeps of a token: the SHA-256 (hex) of the whole string.

    A plain hash is enough (no salt, no slow hash): the secret has 256 bits of entropy,
    so there is nothing to brute-force, and the hash is the lookup key.
    """
    return hashlib.sha256(plaintext.encode("utf-8", "surrogatepass")).hexdigest()


def parse_kind(plaintext: str) -> TokenKind | None:
    """The kind a well-formed token claims, or None for anything else.

    Well-formed: exactly `shp_`, one kind letter, `_`, and 43 base64url characters that
    are the canonical encoding of 32 bytes (the last character carries 4 unused bits that
    must be zero). No whitespace, no padding, no other alphabet, no other length.
    """
    if len(plaintext) != TOKEN_LENGTH:
        return None
    match = _SHAPE.match(plaintext)
    if match is None:
        return None
    letter, secret = match.groups()
    try:
        raw = base64.urlsafe_b64decode(secret + "=")
    except (binascii.Error, ValueError):  # pragma: no cover - the regex admits only base64url
        return None
    canonical = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    if len(raw) != SECRET_BYTES or not hmac.compare_digest(canonical, secret):
        return None
    return _KINDS_BY_LETTER[letter]


def matches(plaintext: str, secret_hash: str) -> bool:
    """Whether `plaintext` is the token stored as `secret_hash` (constant-time)."""
    return hmac.compare_digest(hash_secret(plaintext), secret_hash)
