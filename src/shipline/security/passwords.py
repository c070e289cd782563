"""Password hashing for the web login: argon2id with argon2-cffi's default parameters.

A stored hash carries its parameters, so `needs_rehash` tells when a hash was made with
weaker ones than today's defaults and should be replaced at the next successful login.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


def _hasher() -> PasswordHasher:
    # Built per call (cheap: it only holds parameters), so that there is no module state.
    return PasswordHasher()


def hash_password(password: str) -> str:
    """The argon2id hash (PHC string, with salt and parameters) of `password`."""
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether `password` matches `password_hash`.

    False, never an exception, for a wrong password and for a stored hash that is not a
    valid argon2 hash (a corrupted row must not turn into a 500 or a way in).
    """
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether `password_hash` was made with other parameters than today's defaults."""
    try:
        return _hasher().check_needs_rehash(password_hash)
    except InvalidHashError:
        return True
