"""Token strings: shape, randomness, hashing, and a strict parser (SECURITY-CASES 23)."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipline.domain.records import TokenKind
from shipline.security.tokens import (
    KIND_LETTERS,
    TOKEN_LENGTH,
    hash_secret,
    matches,
    new_token,
    parse_kind,
)

WELL_FORMED = re.compile(r"shp_[ujrg]_[A-Za-z0-9_-]{43}\Z", re.ASCII)


@pytest.mark.parametrize("kind", list(TokenKind))
def test_new_token_has_the_shape_of_its_kind(kind: TokenKind) -> None:
    plaintext, secret_hash = new_token(kind)
    assert plaintext.startswith(f"shp_{KIND_LETTERS[kind]}_")
    assert len(plaintext) == TOKEN_LENGTH == 49
    assert WELL_FORMED.match(plaintext)
    assert parse_kind(plaintext) is kind
    assert secret_hash == hashlib.sha256(plaintext.encode()).hexdigest()


def test_new_token_carries_256_random_bits() -> None:
    tokens = {new_token(TokenKind.USER)[0] for _ in range(200)}
    assert len(tokens) == 200
    raw = base64.urlsafe_b64decode(next(iter(tokens))[6:] + "=")
    assert len(raw) == 32


def test_hash_is_sha256_hex_of_the_whole_string_and_matches_in_constant_time() -> None:
    plaintext, secret_hash = new_token(TokenKind.JOB)
    assert hash_secret(plaintext) == secret_hash
    assert len(secret_hash) == 64
    assert matches(plaintext, secret_hash)
    assert not matches(plaintext[:-1] + ("A" if plaintext[-1] != "A" else "E"), secret_hash)


def _swap_kind(plaintext: str, letter: str) -> str:
    return plaintext[:4] + letter + plaintext[5:]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: "",
        lambda t: t[:-1],
        lambda t: t + "A",
        lambda t: " " + t,
        lambda t: t + "\n",
        lambda t: t.upper(),
        lambda t: "SHP_" + t[4:],
        lambda t: "shq_" + t[4:],
        lambda t: _swap_kind(t, "x"),
        lambda t: _swap_kind(t, "U"),
        lambda t: t[:5] + "-" + t[6:],
        lambda t: t[:6] + "+" + t[7:],  # standard base64, not base64url
        lambda t: t[:6] + "/" + t[7:],
        lambda t: t[:-1] + "=",
        lambda t: t[:6] + "é" + t[7:],
        lambda t: t[:6] + "٣" + t[7:],  # a non-ASCII digit
    ],
)
def test_malformed_tokens_do_not_parse(mutate: object) -> None:
    plaintext, _ = new_token(TokenKind.USER)
    assert callable(mutate)
    assert parse_kind(mutate(plaintext)) is None


def test_non_canonical_last_character_does_not_parse() -> None:
    # 43 characters hold 258 bits; the 2 spare bits of the last one must be zero.
    plaintext = "shp_u_" + "A" * 42 + "B"
    assert parse_kind(plaintext) is None
    assert parse_kind("shp_u_" + "A" * 42 + "E") is TokenKind.USER


@given(st.text(max_size=80))
def test_random_strings_never_parse_unless_well_formed(text: str) -> None:
    kind = parse_kind(text)
    if kind is not None:
        assert WELL_FORMED.match(text)
        assert KIND_LETTERS[kind] == text[4]


@given(st.from_regex(r"shp_[a-z]_[A-Za-z0-9_\-]{41,45}", fullmatch=True))
def test_near_miss_strings_parse_only_when_well_formed(text: str) -> None:
    kind = parse_kind(text)
    well_formed = bool(WELL_FORMED.match(text))
    canonical = False
    if well_formed:
        raw = base64.urlsafe_b64decode(text[6:] + "=")
        canonical = base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == text[6:]
    assert (kind is not None) == (well_formed and canonical)


@given(st.binary(min_size=32, max_size=32), st.sampled_from(list(TokenKind)))
def test_every_32_byte_secret_round_trips(raw: bytes, kind: TokenKind) -> None:
    secret = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    assert parse_kind(f"shp_{KIND_LETTERS[kind]}_{secret}") is kind


@pytest.mark.parametrize("kind", list(TokenKind))
def test_hash_never_fails_on_odd_input(kind: TokenKind) -> None:
    assert len(hash_secret("\ud800" + kind)) == 64
