"""Webhook secrets that are never stored: each project's secret is derived from the
server's webhook key (a file in the state directory, mode 0600) and a per-project salt in
the database. Reading the database alone gives no secret; rotating the salt replaces it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

KEY_BYTES = 32
_LABEL = b"shipline-webhook-secret-v1\0"


def new_salt() -> str:
    return secrets.token_hex(16)


def derive_secret(key: bytes, salt: str) -> str:
    """The webhook secret of `salt` under `key` (URL-safe text, 43 characters)."""
    digest = hmac.new(key, _LABEL + salt.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def load_or_create_key(path: Path) -> bytes:
    """The server's webhook key, created (random, 0600) on first use."""
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = secrets.token_bytes(KEY_BYTES)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another server made it at the same moment
            return load_or_create_key(path)
        try:
            os.write(fd, key)
        finally:
            os.close(fd)
        return key
    if len(key) != KEY_BYTES:
        raise ValueError(f"{path}: a webhook key is {KEY_BYTES} bytes, found {len(key)}")
    return key
