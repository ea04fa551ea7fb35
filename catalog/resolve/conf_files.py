"""HELM's run-entries files (`run_specs*.conf`), read without a HOCON library.

The files use a small part of HOCON: `entries: [ {description: "...", priority: N} ... ]` with
`#` and `//` comments, quoted or bare strings, and `:` or `=` between key and value. An entry
that cannot be read is kept with its line number and the reason, so that one typo does not hide
the rest of the file; only a file without an `entries` list is refused as a whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from catalog.errors import RunEntrySyntaxError


@dataclass(frozen=True)
class ConfEntry:
    """One `{description: "...", priority: N}` of a conf file; `error` says why it is unusable."""

    line: int
    description: str | None = None
    priority: int | None = None
    groups: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class _Token:
    kind: str  # "punct", "string", "word", "bad"
    value: str
    line: int


_PUNCT = "{}[]:=,"
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _tokens(text: str) -> list[_Token]:
    """HOCON's lexical subset that run-entry files use: # and // comments, quoted and bare
    strings, and the punctuation of objects and lists."""
    tokens: list[_Token] = []
    line, i, n = 1, 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
        elif ch.isspace():
            i += 1
        elif ch == "#" or text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif ch in _PUNCT:
            tokens.append(_Token("punct", ch, line))
            i += 1
        elif ch == '"':
            i, token = _string_token(text, i, line)
            tokens.append(token)
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in _PUNCT + '"#':
                if text.startswith("//", i):
                    break
                i += 1
            tokens.append(_Token("word", text[start:i], line))
    return tokens


def _string_token(text: str, start: int, line: int) -> tuple[int, _Token]:
    chars: list[str] = []
    problem: str | None = None
    i, n = start + 1, len(text)
    while i < n and text[i] != "\n":
        ch = text[i]
        if ch == '"':
            if problem is not None:
                return i + 1, _Token("bad", problem, line)
            return i + 1, _Token("string", "".join(chars), line)
        if ch == "\\" and i + 1 < n:
            code = text[i + 1]
            if code == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", text[i + 2 : i + 6]):
                chars.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
                continue
            if code in _ESCAPES:
                chars.append(_ESCAPES[code])
            elif problem is None:
                problem = f"unknown escape '\\{code}' in a string"
            i += 2
            continue
        chars.append(ch)
        i += 1
    return i, _Token("bad", "a string is not closed before the end of its line", line)


@dataclass
class _Parser:
    tokens: list[_Token]
    path: str
    index: int = 0
    entries: list[ConfEntry] = field(default_factory=list)

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> _Token | None:
        token = self.peek()
        if token is not None:
            self.index += 1
        return token

    def fail(self, token: _Token | None, message: str) -> RunEntrySyntaxError:
        line = token.line if token is not None else (self.tokens[-1].line if self.tokens else 1)
        return RunEntrySyntaxError(f"{self.path}:{line}: {message}")

    def parse(self) -> list[ConfEntry]:
        found = False
        while (token := self.take()) is not None:
            if token.kind not in ("word", "string"):
                raise self.fail(token, f"expected a key such as 'entries', found {token.value!r}")
            self.separator()
            if token.value != "entries":
                raise self.fail(
                    token,
                    f"unknown top-level key {token.value!r}; a run-entries file holds "
                    '`entries: [ {description: "...", priority: N} ... ]`',
                )
            found = True
            self.entry_list()
        if not found:
            raise self.fail(None, "no `entries: [...]` list found")
        return self.entries

    def separator(self) -> None:
        token = self.peek()
        if token is not None and token.kind == "punct" and token.value in ":=":
            self.index += 1

    def entry_list(self) -> None:
        opening = self.take()
        if opening is None or opening.value != "[":
            raise self.fail(opening, "expected '[' after 'entries'")
        while True:
            token = self.peek()
            if token is None:
                raise self.fail(opening, "the entries list opened here is never closed with ']'")
            if token.kind == "punct" and token.value == ",":
                self.index += 1
            elif token.kind == "punct" and token.value == "]":
                self.index += 1
                return
            elif token.kind == "punct" and token.value == "{":
                self.entries.append(self.entry())
            else:
                self.index += 1
                self.entries.append(
                    ConfEntry(
                        token.line, error=f"expected '{{' to start an entry, found {token.value!r}"
                    )
                )

    def entry(self) -> ConfEntry:
        opening = self.take()
        assert opening is not None
        fields: dict[str, object] = {}
        while True:
            token = self.take()
            if token is None:
                return ConfEntry(opening.line, error="the entry is never closed with '}'")
            if token.kind == "punct" and token.value == "}":
                return _conf_entry(opening.line, fields)
            if token.kind == "punct" and token.value == ",":
                continue
            if token.kind == "bad":
                error: str | None = token.value
            elif token.kind == "punct":
                error = f"expected a key, found {token.value!r}"
            else:
                error = self.field(token, fields)
            if error is not None:
                self.skip_to_close()
                return ConfEntry(opening.line, error=error)

    def field(self, key: _Token, fields: dict[str, object]) -> str | None:
        token = self.take()
        if token is None or token.kind != "punct" or token.value not in ":=":
            return f"expected ':' after key {key.value!r}"
        value = self.take()
        if value is None:
            return f"key {key.value!r} has no value"
        if value.kind == "bad":
            return value.value
        if value.kind == "punct" and value.value == "[":
            items: list[str] = []
            while (item := self.take()) is not None and item.value != "]":
                if item.kind in ("string", "word"):
                    items.append(item.value)
                elif item.kind == "bad":
                    return item.value
                elif item.value != ",":
                    return f"unexpected {item.value!r} in the list of {key.value!r}"
            fields[key.value] = items
            return None
        if value.kind == "punct":
            return f"key {key.value!r} has no value (found {value.value!r})"
        fields[key.value] = value.value if value.kind == "string" else _word(value.value)
        return None

    def skip_to_close(self) -> None:
        """Resynchronise after a broken entry: past its '}', or up to the next entry's '{'."""
        while (token := self.peek()) is not None:
            if token.kind == "punct" and token.value in "{]":
                return
            self.index += 1
            if token.kind == "punct" and token.value == "}":
                return


def _word(text: str) -> object:
    try:
        return int(text)
    except ValueError:
        return text


def _conf_entry(line: int, fields: dict[str, object]) -> ConfEntry:
    description = fields.get("description")
    if description is None:
        return ConfEntry(line, error="the entry has no description")
    if not isinstance(description, str):
        return ConfEntry(line, error="the description must be a string")
    priority = fields.get("priority")
    if priority is not None and not isinstance(priority, int):
        return ConfEntry(line, description, error=f"priority {priority!r} is not a whole number")
    groups = fields.get("groups", [])
    if not isinstance(groups, list):
        groups = [str(groups)]
    return ConfEntry(line, description, priority, tuple(str(g) for g in groups))


def parse_conf(text: str, path: str = "<conf>") -> list[ConfEntry]:
    """Every entry of a HELM run-entries file, in order; unreadable entries carry `error`.

    A file whose overall shape is wrong (no `entries: [...]`) raises RunEntrySyntaxError.
    Unknown keys inside an entry are ignored, as HELM's loader ignores them.
    """
    return _Parser(_tokens(text), path).parse()
