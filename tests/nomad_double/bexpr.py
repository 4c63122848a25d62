"""A subset of go-bexpr, the filter language of Nomad's ``?filter=`` parameter.

Supported:
  ``Sel == "v"``, ``Sel != "v"``, ``Sel contains "v"``, ``Sel not contains "v"``, ``"v" in Sel``,
  ``"v" not in Sel``, ``Sel is empty``, ``Sel is not empty``, ``Sel matches "re"``, ``Sel not matches "re"``,
  combined with ``and``, ``or``, ``not`` and parentheses. Selectors are dotted paths (``Meta.task_id``,
  ``JobSummary.Summary.main.Running``); values are double-quoted or back-quoted strings, numbers or booleans
  (compared as strings, as go-bexpr coerces the literal to the field's type).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_TOKEN_RE = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`)|(?P<op>==|!=|\(|\))|(?P<word>[A-Za-z0-9_.\-\[\]/*]+))'
)
Predicate = Callable[[dict[str, Any]], bool]
_MISSING = object()


class FilterError(ValueError):
    """An expression outside the supported subset or malformed."""


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if not match or match.end() == pos:
            raise FilterError(f"failed to parse filter at offset {pos}: {text[pos:pos + 20]!r}")
        pos = match.end()
        if match.group("str") is not None:
            raw = match.group("str")
            value = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\") if raw[0] == '"' else raw[1:-1]
            tokens.append(("value", value))
        elif match.group("op") is not None:
            tokens.append(("op", match.group("op")))
        else:
            tokens.append(("word", match.group("word")))
    return tokens


def _lookup(obj: Any, selector: str) -> Any:
    current = obj
    for part in selector.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        else:
            return _MISSING
    return current


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        idx = self.pos + offset
        return self.tokens[idx] if idx < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise FilterError("unexpected end of filter expression")
        self.pos += 1
        return token

    def is_word(self, word: str, offset: int = 0) -> bool:
        token = self.peek(offset)
        return token is not None and token[0] == "word" and token[1] == word

    def parse_or(self) -> Predicate:
        left = self.parse_and()
        while self.is_word("or"):
            self.take()
            right = self.parse_and()
            left = (lambda a, b: lambda o: a(o) or b(o))(left, right)
        return left

    def parse_and(self) -> Predicate:
        left = self.parse_not()
        while self.is_word("and"):
            self.take()
            right = self.parse_not()
            left = (lambda a, b: lambda o: a(o) and b(o))(left, right)
        return left

    def parse_not(self) -> Predicate:
        if self.is_word("not"):
            self.take()
            inner = self.parse_not()
            return lambda o: not inner(o)
        if self.peek() == ("op", "("):
            self.take()
            inner = self.parse_or()
            if self.take() != ("op", ")"):
                raise FilterError("missing closing parenthesis")
            return inner
        return self.parse_match()

    def _value(self) -> str:
        kind, text = self.take()
        if kind == "value" or (kind == "word" and re.fullmatch(r"-?\d+(\.\d+)?|true|false", text)):
            return text
        raise FilterError(f"expected a value, got {text!r}")

    def parse_match(self) -> Predicate:
        first = self.take()
        if first[0] == "value":  # "v" in Sel / "v" not in Sel
            negate = False
            if self.is_word("not"):
                self.take()
                negate = True
            if not self.is_word("in"):
                raise FilterError("expected 'in' after a value")
            self.take()
            sel = self.take()[1]
            value = first[1]

            def contains(o: dict[str, Any]) -> bool:
                found = _lookup(o, sel)
                if isinstance(found, dict):
                    hit = value in found
                elif isinstance(found, (list, tuple)):
                    hit = value in [_as_text(x) for x in found]
                elif isinstance(found, str):
                    hit = value in found
                else:
                    hit = False
                return hit != negate

            return contains
        if first[0] != "word":
            raise FilterError(f"unexpected {first[1]!r}")
        sel = first[1]
        op = self.take()
        if op == ("op", "=="):
            value = self._value()
            return lambda o: (f := _lookup(o, sel)) is not _MISSING and _as_text(f) == value
        if op == ("op", "!="):
            value = self._value()
            return lambda o: (f := _lookup(o, sel)) is _MISSING or _as_text(f) != value
        negate = False
        if op == ("word", "not"):
            negate = True
            op = self.take()
        if op == ("word", "is"):
            if self.is_word("not"):
                self.take()
                negate = not negate
            if not self.is_word("empty"):
                raise FilterError("expected 'empty'")
            self.take()
            return lambda o: ((f := _lookup(o, sel)) is _MISSING or not f) != negate
        if op == ("word", "contains"):
            value = self._value()

            def has(o: dict[str, Any]) -> bool:
                found = _lookup(o, sel)
                if isinstance(found, (list, tuple)):
                    hit = value in [_as_text(x) for x in found]
                elif isinstance(found, dict):
                    hit = value in found
                else:
                    hit = isinstance(found, str) and value in found
                return hit != negate

            return has
        if op == ("word", "matches"):
            pattern = re.compile(self._value())
            return lambda o: ((f := _lookup(o, sel)) is not _MISSING and bool(pattern.search(_as_text(f)))) != negate
        raise FilterError(f"unsupported operator {op[1]!r}")


def compile_filter(text: str) -> Predicate:
    """Compile a filter expression into a predicate over a JSON object; FilterError when not supported."""
    tokens = _tokenize(text)
    if not tokens:
        return lambda o: True
    parser = _Parser(tokens)
    predicate = parser.parse_or()
    if parser.peek() is not None:
        raise FilterError(f"unexpected {parser.peek()[1]!r} in filter expression")  # type: ignore[index]
    return predicate
