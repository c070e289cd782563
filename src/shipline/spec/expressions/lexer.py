"""Tokens of an expression, read the way GitHub's lexer reads them."""

from __future__ import annotations

import enum
import math
from typing import Final, NamedTuple

from shipline.spec.expressions.errors import MAX_LENGTH, ExpressionError
from shipline.spec.expressions.values import parse_number


class TokenKind(enum.Enum):
    LEFT_PAREN = "("
    RIGHT_PAREN = ")"
    LEFT_BRACKET = "["
    RIGHT_BRACKET = "]"
    COMMA = ","
    DOT = "."
    BANG = "!"
    BANG_EQUAL = "!="
    EQUAL_EQUAL = "=="
    GREATER = ">"
    GREATER_EQUAL = ">="
    LESS = "<"
    LESS_EQUAL = "<="
    AND = "&&"
    OR = "||"
    STAR = "*"
    NUMBER = "number"
    STRING = "string"
    IDENTIFIER = "identifier"
    TRUE = "true"
    FALSE = "false"
    NULL = "null"
    EOF = "EOF"


class Token(NamedTuple):
    kind: TokenKind
    lexeme: str
    start: int
    value: float | str | None = None

    def describe(self) -> str:
        """How GitHub quotes the token in an error message."""
        if self.kind is TokenKind.EOF:
            return "EOF"
        if self.kind is TokenKind.STRING:
            return str(self.value)
        return self.lexeme


_SPACE: Final = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_BOUNDARY: Final = frozenset("([)],.!><=&|") | _SPACE
_SINGLE: Final = {
    "(": TokenKind.LEFT_PAREN,
    ")": TokenKind.RIGHT_PAREN,
    "[": TokenKind.LEFT_BRACKET,
    "]": TokenKind.RIGHT_BRACKET,
    ",": TokenKind.COMMA,
    "*": TokenKind.STAR,
}
# `x=` pairs: (kind with "=", kind without); `=`, `&` and `|` alone are not operators.
_COMPARE: Final = {
    "!": (TokenKind.BANG_EQUAL, TokenKind.BANG),
    "<": (TokenKind.LESS_EQUAL, TokenKind.LESS),
    ">": (TokenKind.GREATER_EQUAL, TokenKind.GREATER),
}
_DOUBLED: Final = {"=": TokenKind.EQUAL_EQUAL, "&": TokenKind.AND, "|": TokenKind.OR}
_KEYWORDS: Final = {
    "true": (TokenKind.TRUE, None),
    "false": (TokenKind.FALSE, None),
    "null": (TokenKind.NULL, None),
    "NaN": (TokenKind.NUMBER, math.nan),
    "Infinity": (TokenKind.NUMBER, math.inf),
}
# After these a `.` dereferences; anywhere else it starts a number such as `.5`.
_DEREFERENCEABLE: Final = frozenset(
    {TokenKind.IDENTIFIER, TokenKind.RIGHT_BRACKET, TokenKind.RIGHT_PAREN, TokenKind.STAR}
)
_ALPHA: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDENT_REST: Final = _ALPHA | frozenset("0123456789-")


def is_legal_identifier(s: str) -> bool:
    """Whether `s` can be written as a property name after `.`: `[A-Za-z_][A-Za-z0-9_-]*`."""
    return bool(s) and s[0] in _ALPHA and all(c in _IDENT_REST for c in s[1:])


def tokenize(text: str) -> list[Token]:
    """The tokens of `text`, ending with an EOF token; raises on characters that fit no token."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            "parsing", f"Exceeded max expression length {MAX_LENGTH}", text[:100] + "...", -1
        )
    tokens: list[Token] = []
    n = len(text)
    i = 0

    def previous() -> TokenKind:
        return tokens[-1].kind if tokens else TokenKind.EOF

    def unexpected(start: int, end: int) -> ExpressionError:
        return ExpressionError("parsing", f"Unexpected symbol: '{text[start:end]}'", text, start)

    def scan_word(start: int) -> int:
        end = start + 1
        while end < n and text[end] not in _BOUNDARY:
            end += 1
        return end

    def read_number(start: int) -> int:
        end = start + 1
        while end < n and (text[end] not in _BOUNDARY or text[end] == "."):
            end += 1
        value = parse_number(text[start:end])
        if math.isnan(value):
            raise unexpected(start, end)
        tokens.append(Token(TokenKind.NUMBER, text[start:end], start, value))
        return end

    while i < n:
        c = text[i]
        if c in _SPACE:
            i += 1
        elif c in _SINGLE:
            tokens.append(Token(_SINGLE[c], c, i))
            i += 1
        elif c == ".":
            if previous() in _DEREFERENCEABLE:
                tokens.append(Token(TokenKind.DOT, c, i))
                i += 1
            else:
                i = read_number(i)
        elif c in "+-" or "0" <= c <= "9":
            i = read_number(i)
        elif c in _COMPARE:
            with_eq, alone = _COMPARE[c]
            if text.startswith("=", i + 1):
                tokens.append(Token(with_eq, text[i : i + 2], i))
                i += 2
            else:
                tokens.append(Token(alone, c, i))
                i += 1
        elif c in _DOUBLED:
            if not text.startswith(c, i + 1):
                raise unexpected(i, scan_word(i))
            tokens.append(Token(_DOUBLED[c], c + c, i))
            i += 2
        elif c == "'":
            i = _read_string(text, i, tokens)
        else:
            end = scan_word(i)
            word = text[i:end]
            if previous() is not TokenKind.DOT and word in _KEYWORDS:
                kind, value = _KEYWORDS[word]
                tokens.append(Token(kind, word, i, value))
            elif is_legal_identifier(word):
                tokens.append(Token(TokenKind.IDENTIFIER, word, i))
            else:
                raise unexpected(i, end)
            i = end
    tokens.append(Token(TokenKind.EOF, "", n))
    return tokens


def _read_string(text: str, start: int, tokens: list[Token]) -> int:
    """Reads a single-quoted string (`''` is a quote) and returns the offset after it."""
    i = start + 1
    n = len(text)
    while True:
        close = text.find("'", i)
        if close < 0:
            raise ExpressionError("parsing", f"Unexpected symbol: '{text[start:]}'", text, start)
        if text.startswith("'", close + 1):
            i = close + 2
            continue
        raw = text[start + 1 : close]
        tokens.append(
            Token(TokenKind.STRING, text[start : close + 1], start, raw.replace("''", "'"))
        )
        return close + 1 if close + 1 <= n else n
