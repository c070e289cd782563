"""Recursive-descent parser with GitHub's precedence, depth limit and function checks.

Precedence, loosest first: `||`, `&&`, `==` `!=`, `<` `<=` `>` `>=`, `!`, then `.`/`[]`
(which may follow only a context name, a function call or a parenthesised group).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Final
from typing import Literal as TypingLiteral

from shipline.spec.expressions.ast import (
    Call,
    Compare,
    Expr,
    Group,
    Index,
    Literal,
    Logical,
    NamedValue,
    Not,
    Wildcard,
)
from shipline.spec.expressions.errors import MAX_DEPTH, ExpressionError
from shipline.spec.expressions.functions import KNOWN_FUNCTIONS
from shipline.spec.expressions.lexer import Token, TokenKind, tokenize

_EQUALITY: Final = (TokenKind.EQUAL_EQUAL, TokenKind.BANG_EQUAL)
_COMPARISON: Final[dict[TokenKind, TypingLiteral[">", ">=", "<", "<="]]] = {
    TokenKind.GREATER: ">",
    TokenKind.GREATER_EQUAL: ">=",
    TokenKind.LESS: "<",
    TokenKind.LESS_EQUAL: "<=",
}
_LITERALS: Final = (
    TokenKind.NULL,
    TokenKind.TRUE,
    TokenKind.FALSE,
    TokenKind.NUMBER,
    TokenKind.STRING,
)


@lru_cache(maxsize=4096)
def parse_expression(text: str) -> Expr:
    """The syntax tree of `text` (without `${{ }}`); an empty text is the literal null.

    Raises `ExpressionError(kind="parsing")` for syntax errors, unknown functions, wrong
    argument counts and nesting deeper than GitHub allows. Context names are checked when
    the expression is evaluated, against the contexts given.
    """
    return _Parser(text, tokenize(text)).parse()


def parse_with_names(text: str, is_known: Callable[[str], bool]) -> Expr:
    """Like `parse_expression`, but also rejects context names for which `is_known` is
    false, at the point GitHub's parser does (so its first error is the one reported)."""
    return _Parser(text, tokenize(text), is_known).parse()


class _Parser:
    def __init__(
        self, text: str, tokens: list[Token], is_known: Callable[[str], bool] | None = None
    ) -> None:
        self.text = text
        self.tokens = tokens
        self.is_known = is_known
        self.pos = 0
        self.depth = 0

    def parse(self) -> Expr:
        if self.at_end():
            return Literal(None, 0)
        result = self.expression()
        if not self.at_end():
            raise self.unexpected(self.peek())
        return result

    # Grammar -------------------------------------------------------------------------

    def expression(self) -> Expr:
        self.enter()
        result = self.logical_or()
        self.depth -= 1
        return result

    def logical_or(self) -> Expr:
        first = self.logical_and()
        if not self.check(TokenKind.OR):
            return first
        self.enter()
        offset = self.peek().start
        operands = [first]
        while self.match(TokenKind.OR):
            operands.append(self.logical_and())
        self.depth -= 1
        return Logical("||", tuple(operands), offset)

    def logical_and(self) -> Expr:
        first = self.equality()
        if not self.check(TokenKind.AND):
            return first
        self.enter()
        offset = self.peek().start
        operands = [first]
        while self.match(TokenKind.AND):
            operands.append(self.equality())
        self.depth -= 1
        return Logical("&&", tuple(operands), offset)

    def equality(self) -> Expr:
        result = self.comparison()
        while self.match(*_EQUALITY):
            op = self.previous()
            right = self.comparison()
            eq_op: TypingLiteral["==", "!="] = "==" if op.kind is TokenKind.EQUAL_EQUAL else "!="
            result = Compare(eq_op, result, right, op.start)
        return result

    def comparison(self) -> Expr:
        result = self.unary()
        while self.match(*_COMPARISON):
            op = self.previous()
            right = self.unary()
            result = Compare(_COMPARISON[op.kind], result, right, op.start)
        return result

    def unary(self) -> Expr:
        if self.match(TokenKind.BANG):
            self.enter()
            offset = self.previous().start
            operand = self.unary()
            self.depth -= 1
            return Not(operand, offset)
        return self.postfix()

    def postfix(self) -> Expr:
        result = self.call()
        if not isinstance(result, Group | Call | NamedValue):
            return result
        entered = 0
        while True:
            if self.match(TokenKind.LEFT_BRACKET):
                offset = self.previous().start
                key: Expr
                if self.match(TokenKind.STAR):
                    key = Wildcard(self.previous().start)
                else:
                    key = self.expression()
                self.consume(TokenKind.RIGHT_BRACKET)
                self.enter()
                entered += 1
                result = Index(result, key, offset)
            elif self.match(TokenKind.DOT):
                offset = self.previous().start
                self.enter()
                entered += 1
                if self.match(TokenKind.IDENTIFIER):
                    name = self.previous()
                    result = Index(result, Literal(name.lexeme, name.start), offset, dotted=True)
                elif self.match(TokenKind.STAR):
                    result = Index(result, Wildcard(self.previous().start), offset, dotted=True)
                else:
                    raise self.unexpected(self.peek())
            else:
                break
        self.depth -= entered
        return result

    def call(self) -> Expr:
        if not self.check(TokenKind.IDENTIFIER):
            return self.primary()
        ident = self.advance()
        if not self.match(TokenKind.LEFT_PAREN):
            if self.is_known is not None and not self.is_known(ident.lexeme):
                raise self.error(f"Unrecognized named-value: '{ident.lexeme}'", ident.start)
            return NamedValue(ident.lexeme, ident.start)
        args: list[Expr] = []
        while not self.match(TokenKind.RIGHT_PAREN):
            args.append(self.expression())
            if not self.check(TokenKind.RIGHT_PAREN):
                self.consume(TokenKind.COMMA)
        self.validate_call(ident, len(args))
        return Call(ident.lexeme, tuple(args), ident.start)

    def primary(self) -> Expr:
        token = self.peek()
        if token.kind in _LITERALS:
            self.advance()
            if token.kind is TokenKind.TRUE:
                return Literal(True, token.start)
            if token.kind is TokenKind.FALSE:
                return Literal(False, token.start)
            return Literal(token.value, token.start)
        if self.match(TokenKind.LEFT_PAREN):
            inner = self.expression()
            self.consume(TokenKind.RIGHT_PAREN)
            return Group(inner, token.start)
        raise self.unexpected(token)

    # Checks --------------------------------------------------------------------------

    def validate_call(self, ident: Token, count: int) -> None:
        name = ident.lexeme.lower()
        arity = KNOWN_FUNCTIONS.get(name)
        if arity is None:
            raise self.error(f"Unrecognized function: '{ident.lexeme}'", ident.start)
        if count < arity[0]:
            raise self.error(f"Too few parameters supplied: '{ident.lexeme}'", ident.start)
        if count > arity[1]:
            raise self.error(f"Too many parameters supplied: '{ident.lexeme}'", ident.start)
        if name == "case" and count % 2 == 0:
            raise self.error(
                "Even number of parameters supplied, requires an odd number of parameters: "
                f"'{ident.lexeme}'",
                ident.start,
            )

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"Exceeded max expression depth {MAX_DEPTH}", self.peek().start)

    def error(self, message: str, offset: int) -> ExpressionError:
        return ExpressionError("parsing", message, self.text, offset)

    def unexpected(self, token: Token) -> ExpressionError:
        if token.kind is TokenKind.EOF and self.pos > 0:
            last = self.previous()
            return self.error(f"Unexpected end of expression: '{last.describe()}'", last.start)
        return self.error(f"Unexpected symbol: '{token.describe()}'", token.start)

    # Token stream --------------------------------------------------------------------

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def previous(self) -> Token:
        return self.tokens[self.pos - 1]

    def at_end(self) -> bool:
        return self.tokens[self.pos].kind is TokenKind.EOF

    def check(self, kind: TokenKind) -> bool:
        return self.tokens[self.pos].kind is kind

    def advance(self) -> Token:
        token = self.tokens[self.pos]
        if token.kind is not TokenKind.EOF:
            self.pos += 1
        return token

    def match(self, *kinds: TokenKind) -> bool:
        if self.tokens[self.pos].kind in kinds:
            self.pos += 1
            return True
        return False

    def consume(self, kind: TokenKind) -> None:
        if not self.match(kind):
            raise self.unexpected(self.peek())
