"""Masking secrets and their common encodings (SECURITY-CASES.md 11, 12, 14)."""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Callable
from urllib.parse import quote, quote_plus

import pytest

from shipline.security.masking import MASK, Masker

SECRET = 's3cr3t-V@lue/with+odd&chars "quoted" <x>'
TOKEN = "ghp_9f8e7d6c5b4a3210fedcba9876543210abcd"


def masked(value: str, text: str) -> str:
    return Masker([value]).mask(text)


def test_raw_value_is_masked_everywhere_in_a_line() -> None:
    out = masked(TOKEN, f"token={TOKEN} again {TOKEN}.")
    assert out == "token=*** again ***."


def test_text_without_the_secret_is_unchanged() -> None:
    assert masked(TOKEN, "nothing to see here") == "nothing to see here"


def test_empty_masker_changes_nothing() -> None:
    masker = Masker()
    assert not masker
    assert masker.mask(f"a {TOKEN}") == f"a {TOKEN}"


def test_base64_of_the_value_is_masked() -> None:
    encoded = base64.b64encode(TOKEN.encode()).decode()
    out = masked(TOKEN, f"Authorization: Basic {encoded}")
    assert TOKEN not in out
    assert encoded[2:-2] not in out
    assert MASK in out


def test_base64_of_user_colon_value_is_masked() -> None:
    encoded = base64.b64encode(b"user:" + TOKEN.encode()).decode()
    out = masked(TOKEN, f"Authorization: Basic {encoded}")
    assert out.startswith("Authorization: Basic ")
    # Only a few characters next to the value's edges may survive.
    assert len(out) < len("Authorization: Basic ") + 16


@pytest.mark.parametrize("prefix_length", range(6))
@pytest.mark.parametrize("secret", [TOKEN, TOKEN[:-1], TOKEN[:-2]])
def test_base64_at_every_alignment(prefix_length: int, secret: str) -> None:
    prefix = b"p" * prefix_length
    encoded = base64.b64encode(prefix + secret.encode()).decode()
    out = masked(secret, encoded)
    assert MASK in out
    before, _, after = out.partition(MASK)
    # What survives is the prefix's own characters plus at most one mixed character per side.
    assert len(before) <= (prefix_length * 4 + 2) // 3
    assert len(after) <= 3  # one mixed character and `==` padding
    # The middle of the encoding is gone.
    middle = encoded[len(before) + 2 : len(encoded) - 4]
    assert middle not in out


def test_url_encoded_value_is_masked() -> None:
    encoded = quote(SECRET, safe="")
    assert encoded != SECRET
    assert masked(SECRET, f"https://x.test/?p={encoded}&q=1") == "https://x.test/?p=***&q=1"


def test_json_escaped_value_is_masked() -> None:
    document = json.dumps({"password": SECRET})
    assert SECRET not in document
    assert masked(SECRET, document) == '{"password": "***"}'


def test_xml_escaped_value_is_masked() -> None:
    assert masked(SECRET, f"<p>{html.escape(SECRET)}</p>") == "<p>***</p>"


def test_quoted_value_is_masked() -> None:
    assert masked(TOKEN, f"'{TOKEN}' \"{TOKEN}\"") == "'***' \"***\""


PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n"
    "VJTUt9Us8cKjMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n"
    "NMoSfm76oqFvAp8Gy0iz5sxjZmSnXyCdPEovGhLa0VzMaQ8s+CLOyS56YyCFGeJZ\n"
    "-----END PRIVATE KEY-----"
)


def test_multi_line_secret_every_line_is_masked() -> None:
    printed = "$ cat key.pem\n" + PEM + "\ndone"
    lines = [Masker([PEM]).mask(line) for line in printed.split("\n")]
    assert lines[0] == "$ cat key.pem"
    assert lines[1:-1] == [MASK] * len(PEM.split("\n"))
    assert lines[-1] == "done"


def test_multi_line_secret_with_crlf_lines_is_masked() -> None:
    masker = Masker([PEM.replace("\n", "\r\n")])
    for line in PEM.split("\n"):
        assert masker.mask(line) == MASK


def test_multi_line_secret_registered_at_runtime() -> None:
    masker = Masker()
    assert masker.add(PEM)
    for line in PEM.split("\n"):
        assert masker.mask(f"  {line}") == f"  {MASK}"
    assert masker.mask(PEM) == MASK


@pytest.mark.parametrize("value", ["", "a", "ab", "  x ", "\n"])
def test_short_values_are_refused(value: str) -> None:
    masker = Masker()
    assert masker.add(value) is False
    assert not masker
    assert masker.mask("ab a x") == "ab a x"


def test_three_characters_is_enough() -> None:
    masker = Masker()
    assert masker.add("xyz") is True
    assert masker.mask("a xyz b") == "a *** b"


def test_longer_secret_wins_over_a_shorter_one_inside_it() -> None:
    masker = Masker(["abc", "abcdef-long"])
    assert masker.mask("abcdef-long") == MASK
    assert masker.mask("abc") == MASK


def test_later_added_value_is_masked_too() -> None:
    masker = Masker([TOKEN])
    masker.add("derived-jwt-123")
    assert masker.mask(f"{TOKEN} derived-jwt-123") == "*** ***"


def test_value_with_regex_characters_is_literal() -> None:
    masker = Masker(["a.b*c+d"])
    assert masker.mask("axbbbcd a.b*c+d") == "axbbbcd ***"


def test_json_escaped_non_ascii_value_is_masked_both_ways() -> None:
    value = 'pässwörd-"quoted"'
    for document in (json.dumps([value]), json.dumps([value], ensure_ascii=False)):
        assert value not in document
        assert masked(value, document) == '["***"]'


def test_xml_apostrophe_entity_is_masked() -> None:
    value = "it's-a-secret"
    assert masked(value, "<v>it&apos;s-a-secret</v>") == "<v>***</v>"
    assert masked(value, "<v>it&#x27;s-a-secret</v>") == "<v>***</v>"


ODD = "Sh3ll s'ecret\"with $dollar `tick` & <lt> /slash+plus"


def _bash(script: str, value: str) -> str:
    import subprocess

    done = subprocess.run(
        ["bash", "-c", script], env={"V": value}, capture_output=True, text=True, check=True
    )
    return done.stdout


@pytest.mark.parametrize(
    "script",
    [
        'printf "%q\\n" "$V"',  # bash's own quoting (`set -x` traces look alike)
        "python3 -c 'import os, shlex; print(shlex.quote(os.environ[\"V\"]))'",
        "printf '%s\\n' \"$V\" | sed \"s/'/'\\\\\\\\''/g\"",  # POSIX '...' quoting
        "printf '%s\\n' \"$V\" | sed 's/[\\\\\"$`]/\\\\&/g'",  # inside \"...\"
    ],
)
def test_shell_quoted_forms_printed_by_real_tools_are_masked(script: str) -> None:
    printed = _bash(script, ODD).strip()
    assert printed != ODD
    out = masked(ODD, f"+ deploy --token {printed} done")
    assert "s'ecret" not in out and "ecret" not in out, out
    assert MASK in out


@pytest.mark.parametrize(
    "encode",
    [
        quote,
        lambda v: re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(v, safe="")),
        quote_plus,
    ],
)
def test_url_encodings_with_and_without_slash_plus_and_lower_case_are_masked(
    encode: Callable[[str], str],
) -> None:
    encoded = encode(ODD)
    out = masked(ODD, f"GET /?t={encoded} HTTP/1.1")
    assert "ecret" not in out
    assert MASK in out


def test_a_large_value_is_masked_too() -> None:
    """Past the DFA's size limit the masker switches automaton, not behaviour."""
    from shipline.security.masking import MAX_DFA_PATTERN_CHARS

    lines = [f"line{i:04d}-" + "k" * 60 for i in range(MAX_DFA_PATTERN_CHARS // 400)]
    pem = "\n".join(lines)
    masker = Masker([pem])
    assert masker.mask(f"x {lines[7]} y") == "x *** y"
    assert masker.mask_lines(pem, pem.split("\n")) == ["***"] * len(lines)


def test_may_match_finds_every_form_and_nothing_in_clean_text() -> None:
    secrets = [f"{i:02d}-{SECRET}" for i in range(30)]
    masker = Masker(secrets)
    assert not masker.may_match(b"nothing to see here\n" * 1000)
    assert len(masker._detectors) > 1  # built by the first search
    for form in sorted(masker._forms):
        assert masker.may_match(b"x " + form.encode() + b" y")


def test_lines_of_equals_mask_lines_of_the_decoded_block() -> None:
    masker = Masker([SECRET, "multi\nline-value"])
    block = f"a {SECRET}\r\nline-value\nc\n{base64.b64encode(SECRET.encode()).decode()}".encode()
    text = block.decode()
    lines = [line.rstrip("\r") for line in text.split("\n")]
    found = masker.lines_of(block)
    assert found == masker.mask_lines(text, lines)
    assert found[:3] == ["a ***", "***", "c"]
    assert found[3].startswith("***") and SECRET not in found[3]


def test_a_few_forms_are_looked_for_without_automata_until_one_is_there() -> None:
    """A job's masker (its token, a secret or two) builds no automaton for clean output;
    once a form is there it masks exactly as the automaton does."""
    from shipline.security.masking import FEW_FORMS

    masker = Masker([SECRET])
    assert 0 < len(masker._forms) <= FEW_FORMS
    assert masker.mask("clean line") == "clean line"
    assert not masker.may_match(b"clean block\n" * 100)
    assert masker.lines_of(b"a\nb") == ["a", "b"]
    assert masker._automaton is None
    assert masker.mask(f"x {SECRET} y") == "x *** y"
    assert masker._automaton is not None
    for form in sorted(masker._forms):
        assert masker.may_match(f"x {form} y".encode())
        assert MASK in Masker([SECRET]).mask(f"x {form} y")
