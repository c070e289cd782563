"""Webhook secrets derived from the server's key and a salt, never stored."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from shipline.security.webhook_keys import derive_secret, load_or_create_key, new_salt


def test_the_key_is_made_once_private_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "webhook.key"
    key = load_or_create_key(path)
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="32 bytes"):
        load_or_create_key(path)


def test_secrets_depend_on_key_and_salt() -> None:
    salt = new_salt()
    one = derive_secret(b"k" * 32, salt)
    assert one == derive_secret(b"k" * 32, salt) and len(one) == 43
    assert one != derive_secret(b"j" * 32, salt)
    assert one != derive_secret(b"k" * 32, new_salt())
    assert salt not in one
