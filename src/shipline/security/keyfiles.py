"""The server's key files in its state directory: written 0600, created on first start:
the secrets master key and the provenance signing key.

The secrets master key is `secrets.key` unless the operator provides one (an environment
variable or a file of their own). A rotation writes the new key to `secrets.key.new`,
re-seals every value, then renames it over `secrets.key`; until the rename both are read,
so a rotation interrupted at any point leaves every value readable.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shipline.security.sealing import Keyring, MasterKey, SealError

SECRETS_KEY = "secrets.key"
NEXT_SUFFIX = ".new"
KEY_MODE = 0o600


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to a new file readable by this user only (replacing `path` atomically)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_MODE)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)


def _read_key(path: Path) -> MasterKey:
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise SealError(f"{path}: cannot read the master key ({exc})") from exc
    return MasterKey.from_text(text, str(path))


class SecretsKeySource:
    """Where the master key comes from: `operator_key` (base64 text, from an environment
    variable), else `operator_file`, else `state_dir/secrets.key` (generated when absent)."""

    def __init__(
        self,
        state_dir: Path,
        *,
        operator_key: str | None = None,
        operator_file: Path | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.operator_key = operator_key
        self.operator_file = operator_file

    @property
    def generated(self) -> bool:
        """True when the key is Shipline's own file (so a rotation may replace it)."""
        return self.operator_key is None and self.operator_file is None

    @property
    def path(self) -> Path:
        return self.state_dir / SECRETS_KEY

    def keyring(self) -> Keyring:
        """The keyring to use now (the key file is created on first use)."""
        if self.operator_key is not None:
            current = MasterKey.from_text(self.operator_key, "SHIPLINE_SECRETS_KEY")
        elif self.operator_file is not None:
            current = _read_key(self.operator_file)
        else:
            if not self.path.exists():
                write_private(self.path, MasterKey.generate().to_text().encode() + b"\n")
            current = _read_key(self.path)
        older: tuple[MasterKey, ...] = ()
        pending = self.path.with_name(SECRETS_KEY + NEXT_SUFFIX)
        if pending.exists():
            older = (_read_key(pending),)
        return Keyring(current, older)

    def begin_rotation(self, new: MasterKey) -> None:
        """Keep the new key beside the current one while values are re-sealed."""
        write_private(self.path.with_name(SECRETS_KEY + NEXT_SUFFIX), new.to_text().encode())

    def finish_rotation(self) -> None:
        """The new key becomes the key (atomic rename)."""
        self.path.with_name(SECRETS_KEY + NEXT_SUFFIX).replace(self.path)

    def abandon_rotation(self) -> None:
        """The re-sealing failed (rolled back): the old key stays the key."""
        self.path.with_name(SECRETS_KEY + NEXT_SUFFIX).unlink(missing_ok=True)


SIGNING_KEY = "provenance.key"


def signing_key(state_dir: Path) -> Ed25519PrivateKey:
    """The server's Ed25519 provenance key, `state_dir/provenance.key` (created 0600 on
    first use). It never leaves the control plane: not mounted into sandboxes, never sent
    to runners."""
    path = state_dir / SIGNING_KEY
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private(path, pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SealError(f"{path}: not an Ed25519 private key")
    return key
