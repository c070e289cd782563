"""Password hashing: argon2id, no exception for a wrong password or a broken hash."""

from __future__ import annotations

from argon2 import PasswordHasher

from shipline.security.passwords import hash_password, needs_rehash, verify_password


def test_hash_is_argon2id_salted_and_verifies() -> None:
    first = hash_password("correct horse")
    second = hash_password("correct horse")
    assert first.startswith("$argon2id$")
    assert first != second  # salted
    assert verify_password(first, "correct horse")
    assert verify_password(second, "correct horse")


def test_wrong_password_is_false_not_an_exception() -> None:
    stored = hash_password("correct horse")
    assert verify_password(stored, "battery staple") is False
    assert verify_password(stored, "") is False


def test_broken_hash_is_false_not_an_exception() -> None:
    assert verify_password("not a hash", "x") is False
    assert verify_password("", "x") is False
    assert verify_password("$argon2id$v=19$m=65536,t=3,p=4$broken", "x") is False


def test_needs_rehash_for_weaker_parameters_and_broken_hashes() -> None:
    assert needs_rehash(hash_password("pw")) is False
    assert needs_rehash(PasswordHasher(time_cost=1, memory_cost=8192).hash("pw")) is True
    assert needs_rehash("not a hash") is True
