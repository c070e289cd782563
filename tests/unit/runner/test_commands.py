"""`OutputProcessor`: line assembly, masking and workflow commands (SECURITY-CASES 7, 13)."""

from __future__ import annotations

import base64

import pytest

from shipline.runner.commands import MAX_PENDING, Annotation, OutputProcessor
from shipline.security.masking import Masker

SECRET = "hunter2-0123456789-abcdef"


class Sink:
    def __init__(self, secrets: list[str] | None = None, *, debug: bool = False) -> None:
        self.lines: list[str] = []
        self.annotations: list[Annotation] = []
        self.masker = Masker(secrets)
        self.processor = OutputProcessor(
            self.masker, self.lines.extend, self.annotations.append, debug=debug
        )

    def run(self, *chunks: bytes) -> list[str]:
        for chunk in chunks:
            self.processor.feed(chunk)
        self.processor.close()
        return self.lines


def test_lines_are_reassembled_across_chunks() -> None:
    sink = Sink()
    sink.processor.feed(b"hel")
    assert sink.lines == []
    sink.processor.feed(b"lo\nwor")
    assert sink.lines == ["hello"]
    sink.processor.feed(b"ld\n")
    assert sink.lines == ["hello", "world"]


def test_last_line_without_newline_is_flushed_on_close() -> None:
    assert Sink().run(b"a\nb") == ["a", "b"]


def test_secret_split_across_two_writes_is_masked() -> None:
    # SECURITY-CASES 13: printf '%s' "${S:0:10}"; sleep 1; printf '%s\n' "${S:10}"
    lines = Sink([SECRET]).run(b"key: " + SECRET[:10].encode(), SECRET[10:].encode() + b"\n")
    assert lines == ["key: ***"]


def test_secret_split_across_chunks_in_a_command_block_is_masked() -> None:
    lines = Sink([SECRET]).run(b"::group::x\n" + SECRET[:5].encode(), SECRET[5:].encode() + b"\n")
    assert lines == ["▶ x", "***"]


def test_multibyte_character_split_across_chunks() -> None:
    data = "héllo → ✓\n".encode()
    chunks = [data[i : i + 1] for i in range(len(data))]
    assert Sink().run(*chunks) == ["héllo → ✓"]


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    assert Sink().run(b"a\xffb\n") == ["a\ufffdb"]


def test_add_mask_masks_later_lines_and_is_not_logged() -> None:
    lines = Sink().run(b"::add-mask::derived-token-42\n", b"value derived-token-42\n")
    assert lines == ["value ***"]


def test_add_mask_multi_line_value_escaped() -> None:
    lines = Sink().run(b"::add-mask::first-line%0Asecond-line\n", b"first-line\nsecond-line\n")
    assert lines == ["***", "***"]


def test_group_and_endgroup() -> None:
    assert Sink().run(b"::group::Install deps\nok\n::endgroup::\n") == ["▶ Install deps", "ok"]


def test_error_with_file_and_line_makes_an_annotation_and_a_log_line() -> None:
    sink = Sink()
    lines = sink.run(b"::error file=a.py,line=3::something broke\n")
    assert sink.annotations == [
        Annotation(level="error", message="something broke", file="a.py", line=3)
    ]
    assert lines == ["Error (a.py:3): something broke"]


def test_warning_with_col_and_title_and_bad_line_number() -> None:
    sink = Sink()
    sink.run(b"::warning file=b.py,line=x,col=7,title=Style%3A bad%2C really::hmm\n")
    assert sink.annotations == [
        Annotation(
            level="warning",
            message="hmm",
            file="b.py",
            line=None,
            col=7,
            title="Style: bad, really",
        )
    ]


def test_notice_without_properties() -> None:
    sink = Sink()
    assert sink.run(b"::notice::fyi\n") == ["Notice: fyi"]
    assert sink.annotations == [Annotation(level="notice", message="fyi")]


def test_annotation_message_is_unescaped_and_masked() -> None:
    sink = Sink([SECRET])
    sink.run(b"::error::first%0Asecond 100%25 " + SECRET.encode() + b"\n")
    assert sink.annotations[0].message == "first\nsecond 100% ***"
    assert SECRET not in "".join(sink.lines)


def test_debug_lines_shown_only_in_debug_mode() -> None:
    assert Sink().run(b"::debug::details\n") == []
    assert Sink(debug=True).run(b"::debug::details\n") == ["Debug: details"]


def test_stop_commands_until_the_token() -> None:
    sink = Sink()
    lines = sink.run(
        b"::stop-commands::pause-42\n",
        b"::error::not an annotation\n",
        b"::add-mask::not-a-mask-value\n",
        b"::pause-42::\n",
        b"::error::real\n",
        b"not-a-mask-value\n",
    )
    assert lines == [
        "::error::not an annotation",
        "::add-mask::not-a-mask-value",
        "Error: real",
        "not-a-mask-value",
    ]
    assert [a.message for a in sink.annotations] == ["real"]


def test_stopped_commands_are_still_masked() -> None:
    lines = Sink([SECRET]).run(b"::stop-commands::t\n", f"::x::{SECRET}\n".encode())
    assert lines == ["::x::***"]


@pytest.mark.parametrize(
    "line",
    [
        b"::set-env name=LD_PRELOAD::/tmp/x.so",
        b"::add-path::/tmp/evil",
        b"::set-output name=result::owned",
        b"::save-state name=s::v",
    ],
)
def test_refused_commands_warn_and_change_nothing(line: bytes) -> None:
    # SECURITY-CASES 7: printed directives never change env, PATH, outputs or state.
    sink = Sink()
    lines = sink.run(line + b"\n")
    assert len(lines) == 1
    assert lines[0].startswith("Warning: the `")
    assert "is disabled" in lines[0]
    assert "/tmp" not in lines[0] and "owned" not in lines[0]
    assert sink.annotations == []
    assert not sink.masker


def test_carriage_returns_are_stripped() -> None:
    assert Sink().run(b"one\r\ntwo\r\n::notice::three\r\n") == ["one", "two", "Notice: three"]


def test_carriage_return_split_from_its_newline() -> None:
    assert Sink([SECRET]).run(SECRET.encode() + b"\r", b"\n") == ["***"]


def test_very_long_line_without_newline_is_flushed() -> None:
    sink = Sink()
    sink.processor.feed(b"x" * MAX_PENDING)
    assert sink.lines == []
    sink.processor.feed(b"y")
    assert sink.lines == ["x" * MAX_PENDING + "y"]
    sink.processor.feed(b"z\n")
    assert sink.lines[-1] == "z"


def test_unknown_command_is_logged_as_is() -> None:
    assert Sink().run(b"::frobnicate::x\n:: not a command\n") == [
        "::frobnicate::x",
        ":: not a command",
    ]


PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n"
    "VJTUt9Us8cKjMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n"
    "-----END PRIVATE KEY-----"
)


def test_catted_pem_secret_masks_every_line_and_keeps_the_line_count() -> None:
    # SECURITY-CASES 12
    lines = Sink([PEM]).run(b"before\n" + PEM.encode() + b"\nafter\n")
    assert lines == ["before", "***", "***", "***", "***", "after"]


def test_escaped_newlines_in_a_command_become_separate_log_lines() -> None:
    sink = Sink([SECRET])
    lines = sink.run(b"::error::first%0Asecond " + SECRET.encode() + b"\n")
    assert lines == ["Error: first", "second ***"]


def test_annotation_title_and_file_are_masked() -> None:
    sink = Sink([SECRET])
    sink.run(f"::error file=x/{SECRET}.py,title=leak {SECRET}::m\n".encode())
    assert sink.annotations[0].title == "leak ***"
    assert sink.annotations[0].file == "x/***.py"
    assert SECRET not in "\n".join(sink.lines)


def test_indented_lines_that_are_not_commands_keep_their_indentation() -> None:
    lines = Sink().run(b"x\n    ::std::cout << 1;\n  ::1 localhost\n  ::notice::n\n")
    assert lines == ["x", "    ::std::cout << 1;", "  ::1 localhost", "Notice: n"]


def test_long_line_cut_never_splits_a_multibyte_character() -> None:
    sink = Sink()
    data = b"x" * (MAX_PENDING - 1) + "é✓".encode()
    sink.processor.feed(data[:-1])  # the ✓ cut after its second byte
    sink.processor.feed(data[-1:] + b"\n")
    assert "".join(sink.lines) == "x" * (MAX_PENDING - 1) + "é✓"
    assert "\ufffd" not in "".join(sink.lines)


def test_secret_next_to_invalid_utf8_in_a_block_is_masked() -> None:
    # The block's raw bytes hold the secret; decoding replaces the bad byte around it.
    lines = Sink([SECRET]).run(b"ok\n\xff" + SECRET.encode() + b"\xfe\nend\n")
    assert lines == ["ok", "\ufffd***\ufffd", "end"]


def test_a_secret_with_non_ascii_characters_is_masked_in_a_fast_block() -> None:
    secret = "pässwörd-✓-" + SECRET
    lines = Sink([secret]).run(f"a\nb {secret} c\nd\n".encode())
    assert lines == ["a", "b *** c", "d"]


def test_many_secrets_each_masked_in_a_large_block() -> None:
    # 40 secrets give several hundred forms, searched in several groups (`Masker._build`).
    secrets = [f"s{i:02d}-{SECRET}" for i in range(40)]
    body = "".join(f"line {i} {s} end\n" for i, s in enumerate(secrets))
    lines = Sink(secrets).run(("filler\n" * 5000 + body).encode())
    assert lines[5000:] == [f"line {i} *** end" for i in range(40)]
    assert not any(s in "\n".join(lines) for s in secrets)


def test_a_registered_value_is_masked_in_debug_lines_annotations_and_base64() -> None:
    # SECURITY-CASES 16: a derived credential registered at run time, printed later in a
    # debug line, an annotation and encoded.
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJqb2IifQ.c2lnbmF0dXJl"
    encoded = base64.b64encode(f"bearer:{jwt}".encode())
    sink = Sink(debug=True)
    lines = sink.run(
        f"::add-mask::{jwt}\n::debug::token is {jwt}\n".encode(),
        f"::warning title={jwt}::sent {jwt}\n".encode(),
        b"auth " + encoded + b"\n",
    )
    assert lines[0] == "Debug: token is ***"
    assert jwt not in "\n".join(lines)
    assert encoded.decode()[12:-4] not in lines[-1]
    assert sink.annotations == [Annotation("warning", "sent ***", title="***")]
