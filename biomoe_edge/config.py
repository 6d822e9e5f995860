"""TOML loading that works on Python 3.10 (tomli) and 3.11+ (tomllib), with limits that keep a hostile file cheap.

tomllib/tomli recurse once per nested array or inline table (a few thousand levels raise RecursionError) and
build a dotted key in time and memory quadratic in its length (a 50,000-level key takes half a minute and
gigabytes). :func:`load_toml` therefore checks the text before parsing: at most ``MAX_TOML_BYTES`` bytes and
``MAX_TOML_DEPTH`` levels of tables, dotted keys, arrays and inline tables together. The check is a small
lexer that knows TOML's strings and comments; it only counts, and the parser still judges the syntax.
"""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # JetPack 6 ships Python 3.10
    import tomli as tomllib

__all__ = ["tomllib", "load_toml", "loads_toml", "TomlError", "MAX_TOML_BYTES", "MAX_TOML_DEPTH"]

#: A gateway configuration is a few kilobytes; this leaves room for long allow-lists.
MAX_TOML_BYTES = 1 << 20
#: Levels of nesting (table names, dotted keys, arrays, inline tables); the deepest real key is about 4.
MAX_TOML_DEPTH = 32


class TomlError(ValueError):
    """The file is not TOML, or not TOML this SDK reads (too large, too deeply nested).

    ``key`` is the (dotted) key where the problem is, when there is one; ``line`` counts from 1."""

    def __init__(self, message: str, *, source=None, line: int | None = None, key: str | None = None):
        self.reason, self.source, self.line, self.key = message, source, line, key
        where = f"{source}: " if source is not None else ""
        at = f"line {line}: " if line is not None else ""
        name = f"{key}: " if key else ""
        super().__init__(f"{where}{at}{name}{message}")


def _check_depth(text: str, limit: int, source) -> None:
    """Raise TomlError where nesting exceeds ``limit``. Linear in the text, no recursion.

    Depth of a key = levels of its table header + dots of its dotted key + 1 + enclosing arrays/inline tables.
    Dots count only in key position (numbers and dates in values have dots too)."""
    n = len(text)
    i = 0
    line = 1
    stack: list[str] = []  # "[" array, "{" inline table, "h" table header
    header_depth = 0  # levels of the current [table] / [[array of tables]]
    key_dots = 0  # dots of the key being read
    in_key = True  # at the start of a line (outside brackets) or after "{" / ","
    key_text: list[str] = []
    top_key = ""  # the last top-level key, to name the place of a deep value
    while i < n:
        c = text[i]
        if c in "\"'":
            quote = c * 3 if text.startswith(c * 3, i) else c
            i += len(quote)
            start = i
            while i < n:
                if quote[0] == '"' and text[i] == "\\":
                    i += 2
                    continue
                if text.startswith(quote, i):
                    break
                if text[i] == "\n":
                    if len(quote) == 1:
                        break  # a one-line string cannot span lines; tomllib will say so
                    line += 1
                i += 1
            if in_key and len(key_text) < 40:
                key_text.append(text[start:min(i, start + 20)])
            i += len(quote) if text.startswith(quote, i) else 0
            continue
        if c == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        if c == "\n":
            line += 1
            if not stack or stack[-1] == "h":
                in_key, key_dots, key_text = True, 0, []
        elif c == "[":
            if not stack and in_key:  # a table header: [a.b] or [[a.b]]
                stack.append("h")
                key_dots, key_text = 0, []
                if text.startswith("[[", i):
                    i += 1
            else:
                stack.append("[")
                in_key = False
        elif c == "{":
            stack.append("{")
            in_key, key_dots, key_text = True, 0, []
        elif c in "]}":
            if stack and stack[-1] == "h":
                header_depth = key_dots + 1
                stack.pop()
                if text.startswith("]]", i):
                    i += 1
                in_key, key_dots, key_text = False, 0, []
            elif stack:
                stack.pop()
                in_key = False
        elif c == "," and stack and stack[-1] == "{":
            in_key, key_dots, key_text = True, 0, []
        elif c == "=" and in_key and (not stack or stack[-1] == "{"):
            in_key = False
            if not stack:
                top_key = "".join(key_text)
        elif c == "." and in_key:
            key_dots += 1
            if len(key_text) < 40:
                key_text.append(c)
        elif in_key and len(key_text) < 40 and not c.isspace():
            key_text.append(c)
        brackets = sum(1 for s in stack if s != "h")
        depth = (0 if stack and stack[0] == "h" else header_depth) + key_dots + 1 + brackets
        if depth > limit:
            key = ("".join(key_text) if in_key else top_key)[:40] or top_key[:40] or None
            raise TomlError(f"nested deeper than {limit} levels (tables, dotted keys, arrays and inline tables "
                            "together); a gateway configuration needs a handful", source=source, line=line, key=key)
        i += 1


def loads_toml(text: str, *, source=None, max_depth: int = MAX_TOML_DEPTH) -> dict:
    """Parse TOML text; TomlError (a ValueError) names the source, line and column of a syntax error."""
    if len(text) > MAX_TOML_BYTES:
        raise TomlError(f"{len(text)} characters: more than the {MAX_TOML_BYTES} a configuration may have",
                        source=source)
    _check_depth(text, max_depth, source)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TomlError(f"invalid TOML: {exc}", source=source) from None
    except RecursionError:  # the depth check should make this unreachable; never let it escape as such
        raise TomlError("invalid TOML: nested too deeply", source=source) from None


def load_toml(path) -> dict:
    """Read a TOML file; a syntax error becomes TomlError (a ValueError) naming the file, line and column."""
    with open(path, "rb") as f:
        data = f.read(MAX_TOML_BYTES + 1)
    if len(data) > MAX_TOML_BYTES:
        raise TomlError(f"larger than the {MAX_TOML_BYTES} bytes a configuration may have", source=path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TomlError(f"invalid TOML: not UTF-8 (byte {exc.start})", source=path) from None
    return loads_toml(text, source=path)
