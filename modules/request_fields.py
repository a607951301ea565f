"""How one field of a request is read. Values arrive from the UI, from API clients (JSON) and from params.json:
numbers as text, None for an emptied box, NaN, 1e400, lists... Each field goes through one of these, which returns a
value of the field's type or raises `RequestError` naming the field and what it accepts."""

from __future__ import annotations

import math
import numbers
import re

from .errors import UserError

MAX_PROMPT_CHARS = 2000  # CLIP reads 77 tokens; far longer text is a mistake, not a prompt
_TRUE_WORDS = ("true", "1", "yes", "on")
_FALSE_WORDS = ("false", "0", "no", "off")
_INT_TEXT = re.compile(r"[+-]?\d+")


class RequestError(UserError, ValueError):
    """Bad input; the message is shown to the user as is."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise RequestError(message)


# --------------------------------------------------------------------------- coercion
# Values arrive from the UI, from API clients (JSON) and from params.json: numbers as text, None
# for an emptied box, NaN, 1e400, lists... Each field goes through one of these, which returns a
# value of the field's type or raises RequestError naming the field and what it accepts.


def show(value) -> str:
    """A user's value, short and printable whatever it is (a 5000-digit int cannot even be str()'d)."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and abs(value) >= 10**15:
        return f"a {'negative ' if value < 0 else ''}number of about {value.bit_length() * 30103 // 100000 + 1} digits"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN (not a number)"
        return {math.inf: "infinity", -math.inf: "minus infinity"}.get(value, f"{value:g}")
    try:
        text = repr(value)
    except ValueError:
        return "a value too large to show"
    return text if len(text) <= 40 else text[:37] + "..."


def range_text(low, high) -> str:
    def number(value) -> str:
        return str(value) if isinstance(value, int) else f"{value:g}"

    return f"from {number(low)} to {number(high)}"


def number(value, name: str, low: float, high: float, *, default, whole: bool, hint: str = ""):
    """`value` as an int (whole) or float within [low, high]; None or "" give `default`.

    Accepts numbers and numeric text ("12", " 7.5 "); a whole-number field accepts 12.0 but not
    12.5. Refuses bools, NaN, infinities, other types, and anything out of range.
    """
    kind = "a whole number" if whole else "a number"
    problem = f"{name} must be {kind} {range_text(low, high)}{hint}; got {{}}."
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (str, numbers.Real)):
        raise RequestError(problem.format(show(value)))
    shown = show(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return default
        try:
            value = int(text) if _INT_TEXT.fullmatch(text) else float(text)
        except ValueError:  # not a number, or more digits than Python will parse
            raise RequestError(problem.format(shown)) from None
    if isinstance(value, numbers.Integral):
        value = int(value)
    else:
        try:
            value = float(value)
        except (OverflowError, ValueError, TypeError):
            raise RequestError(problem.format(shown)) from None
        if not math.isfinite(value) or (whole and not value.is_integer()):
            raise RequestError(problem.format(shown))
        if whole:
            value = int(value)
    if not low <= value <= high:  # exact for huge ints: no float conversion before the check
        raise RequestError(problem.format(show(value)))
    return value if whole else float(value) + 0.0  # + 0.0 turns -0.0 into 0.0


def text(value, name: str, *, default: str = "") -> str:
    """Stripped text; None gives `default`; numbers and other types are refused."""
    if value is None:
        value = default
    if not isinstance(value, str):
        raise RequestError(f"{name} must be text; got {show(value)}.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RequestError(f"{name} contains characters that are not valid text; please retype it.") from None
    value = value.replace("\x00", "").strip()
    check(
        len(value) <= MAX_PROMPT_CHARS,
        f"{name} is {len(value):,} characters long; at most {MAX_PROMPT_CHARS:,} are allowed.",
    )
    return value


def choice(value, name: str, allowed: tuple[str, ...], *, default: str | None = None, what: str = "") -> str:
    """One of `allowed`; None or "" give `default` where there is one."""
    if default is not None and (value is None or (isinstance(value, str) and not value.strip())):
        return default
    if isinstance(value, str) and value.strip() in allowed:
        return value.strip()
    raise RequestError(f"{name} {show(value)} is not offered{what}; choose one of: {', '.join(allowed)}.")


def flag(value, name: str, *, default: bool) -> bool:
    """A checkbox: bools, 0/1 and the usual words ("true", "off", ...)."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Real) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS + _FALSE_WORDS:
        return value.strip().lower() in _TRUE_WORDS
    raise RequestError(f"{name} must be on or off (true or false); got {show(value)}.")
