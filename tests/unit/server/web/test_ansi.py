"""Terminal output to inert, styled segments."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shipline.server.web.ansi import Segment, plain, render_line


def test_sgr_colours_and_styles_become_classes_and_reset() -> None:
    assert render_line("\x1b[1;31mred\x1b[0m plain \x1b[4;92;44mx\x1b[24m y\x1b[39;49mz") == (
        Segment("red", ("ansi-bold", "ansi-fg-red")),
        Segment(" plain ", ()),
        Segment("x", ("ansi-underline", "ansi-fg-bright-green", "ansi-bg-blue")),
        Segment(" y", ("ansi-fg-bright-green", "ansi-bg-blue")),
        Segment("z", ()),
    )


def test_256_and_true_colours_map_to_the_nearest_basic_colour() -> None:
    assert render_line("\x1b[38;5;196ma\x1b[38;5;21mb\x1b[48;2;0;200;0mc") == (
        Segment("a", ("ansi-fg-bright-red",)),
        Segment("b", ("ansi-fg-blue",)),
        Segment("c", ("ansi-fg-blue", "ansi-bg-green")),
    )
    assert render_line("\x1b[38;5mx") == (Segment("x", ()),)  # truncated: ignored


def test_everything_else_a_terminal_obeys_is_dropped() -> None:
    assert plain("\x1b]8;;https://evil.example\x07link\x1b]8;;\x1b\\ text") == "link text"
    assert plain("\x1b]0;title\x07shown") == "shown"
    assert plain("\x1b[2J\x1b[10;1H\x1b[Kcleared\x1b[?25l\x1b7\x1b8") == "cleared"
    assert plain("\x1bPdevice control\x1b\\after") == "after"
    assert plain("\x9b31mC1 CSI\x9d0;t\x9c!") == "C1 CSI!"
    assert plain("bell\x07 back\x08 nul\x00 del\x7f esc\x1b") == "bell back nul del esc"
    assert plain("\x1b[u\x1b[ünfinished") == "ünfinished"  # ESC [ u restores the cursor
    assert plain("tab\tkept") == "tab\tkept"


def test_carriage_returns_keep_what_was_written_last() -> None:
    assert plain("10%\r50%\r100%") == "100%"
    assert plain("done\r") == "done"
    assert plain("\r\r") == ""


def test_bidirectional_overrides_are_shown_not_obeyed() -> None:
    assert render_line("a\u202eb\u2066c") == (
        Segment("a", ()),
        Segment("<U+202E>", ("ansi-control",)),
        Segment("b", ()),
        Segment("<U+2066>", ("ansi-control",)),
        Segment("c", ()),
    )


@given(st.text(alphabet=st.characters(codec="utf-8")))
def test_no_control_character_survives_and_classes_come_from_the_table(text: str) -> None:
    for segment in render_line(text):
        assert not any(ord(c) < 32 and c != "\t" for c in segment.text)
        assert not any(0x7F <= ord(c) <= 0x9F for c in segment.text)
        assert "\u202e" not in segment.text
        for cls in segment.classes:
            assert cls.replace("-", "").isalpha() and cls.startswith("ansi-")


@given(st.text(alphabet=st.characters(codec="utf-8")))
def test_plain_is_the_text_of_the_rendered_segments(text: str) -> None:
    assert plain(text) == "".join(s.text for s in render_line(text))
