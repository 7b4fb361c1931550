"""Schema problems as meshctl reports them: the field's path and a one-line message a person can
act on, with the value shown and a did-you-mean where one is obvious."""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Callable

Check = Callable[[Any, tuple, list], None]


@dataclass(frozen=True)
class SchemaError:
    """One problem: `path` from the object root (keys and list indexes) and a one-line message
    that starts with the dotted path (`spec.http[0].timeout: ...`)."""

    path: tuple
    message: str

    @property
    def detail(self) -> str:
        """The message without its leading path."""
        prefix = format_path(self.path) + ": "
        return self.message[len(prefix):] if self.message.startswith(prefix) else self.message

    def __str__(self) -> str:  # pragma: no cover - convenience
        return self.message


_PLAIN_KEY = re.compile(r"\A[A-Za-z_][A-Za-z0-9_\-]*\Z")  # \Z: "$" would let a key end in a newline


def format_path(path: tuple) -> str:
    """("spec", "http", 0, "timeout") → `spec.http[0].timeout`; odd keys are quoted."""
    out = []
    for step in path:
        if isinstance(step, int):
            out.append(f"[{step}]")
        elif _PLAIN_KEY.match(str(step)):
            out.append(("." if out else "") + str(step))
        else:
            out.append(f"[{quote_text(str(step))}]")
    return "".join(out) or "(root)"


def quote_text(text: str) -> str:
    """A double-quoted string on one line (quotes, backslashes and control characters escaped)."""
    return json.dumps(text, ensure_ascii=False)


class Probe(list):
    """Error sink of a sub-check whose errors are only counted (`if`, `not`, `oneOf` branches)."""


def err(errors: list, path: tuple, text: str) -> None:
    if type(errors) is Probe:
        errors.append(None)
        return
    errors.append(SchemaError(path, f"{format_path(path)}: {text}"))


def show(value: Any, limit: int = 60) -> str:
    if isinstance(value, str):
        s = value if len(value) <= limit else value[: limit - 1] + "…"
        return quote_text(s)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return type(value).__name__


TYPE_NAMES = {"object": "an object", "array": "a list", "string": "a string",
               "integer": "an integer", "number": "a number", "boolean": "a boolean (true/false)",
               "null": "null"}


def describe(value: Any) -> str:
    if value is None:
        return "null (remove the key or give it a value)"
    if isinstance(value, bool):
        return f"a boolean ({show(value)})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"a string ({show(value)})"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__} ({value!s})"


def is_integer(v: Any) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not (
        isinstance(v, float) and (math.isnan(v) or math.isinf(v)))


TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": is_integer,
    "number": is_number,
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def did_you_mean(word: str, choices) -> str:
    import difflib  # only when there is an error to explain

    choices = [str(c) for c in choices]
    if not choices:
        return ""
    lowered = {c.lower(): c for c in choices}
    if word.lower() in lowered:
        return f' (did you mean "{lowered[word.lower()]}"?)'
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close:
        close = [lowered[c] for c in difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)]
    return f' (did you mean "{close[0]}"?)' if close else ""


