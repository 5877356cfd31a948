"""Checks for options and arguments, in one place, so every entry point says the same thing.

Each returns the value (converted where that helps) or raises a `ValueError` (a `TypeError` for
flags and plugins) naming the parameter and what it accepts. Numbers are `int` or `float`, never
`bool`, and finite: NaN passes no comparison, so `value <= 0` alone would let it through, and
infinity is accepted only where it means "no limit".
"""

from __future__ import annotations

import math
import numbers
from types import ModuleType

__all__ = [
    "block",
    "flag",
    "flags",
    "integer",
    "number",
    "plugin",
    "seconds",
    "time_limit",
    "timeout",
]


def number(
    name: str,
    value: object,
    *,
    minimum: float,
    inclusive: bool = True,
    allow_inf: bool = False,
    unit: str = "",
) -> float:
    """`value` as a float: finite (or `+inf` if `allow_inf`) and >= (or >) `minimum`."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        as_float = float(value)
        finite = not (math.isnan(as_float) or math.isinf(as_float))
        if (finite or (allow_inf and as_float == math.inf)) and (
            as_float > minimum or (inclusive and as_float == minimum)
        ):
            return as_float
    accepted = f"a finite number{unit} {'>=' if inclusive else '>'} {minimum:g}"
    if allow_inf:
        accepted += " (or math.inf for no limit)"
    raise ValueError(f"{name} must be {accepted}, got {value!r}")


def seconds(
    name: str, value: object, *, allow_zero: bool = False, allow_inf: bool = False
) -> float:
    """A duration in seconds: finite and > 0 (>= 0 with `allow_zero`)."""
    return number(
        name, value, minimum=0.0, inclusive=allow_zero, allow_inf=allow_inf, unit=" of seconds"
    )


def timeout(name: str, value: object) -> float | None:
    """How long to wait: `None` (or `math.inf`) for no limit, else finite seconds >= 0."""
    if value is None:
        return None
    limit = seconds(name, value, allow_zero=True, allow_inf=True)
    return None if math.isinf(limit) else limit


def block(value: object) -> float | None:
    """How long a submission waits for room in a full queue: `None` for as long as it takes.

    `True` waits for room, `False` (or 0) does not wait at all, a number of seconds waits that
    long at most (`math.inf`: as long as it takes).
    """
    if value is True:
        return None
    if value is False:
        return 0.0
    if isinstance(value, int | float) and not isinstance(value, bool):
        as_float = float(value)
        if as_float == math.inf:
            return None
        if not math.isnan(as_float) and 0.0 <= as_float < math.inf:
            return as_float
    raise ValueError(
        "block must be True (wait for room), False (fail at once) or a number of seconds >= 0 "
        f"to wait at most, got {value!r}"
    )


def time_limit(name: str, value: object) -> float | None:
    """A task's time limit: finite seconds > 0, or `math.inf` (returned as `None`): no limit."""
    limit = seconds(name, value, allow_inf=True)
    return None if math.isinf(limit) else limit


def integer(name: str, value: object, *, minimum: int) -> int:
    """An `int` (not a `bool`) >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def flag(name: str, value: object) -> bool:
    """A `bool`, and nothing that merely looks true or false (`"no"` is truthy)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__}: {value!r}")
    return value


def flags(priority: object, once: object) -> None:
    """`priority` and `once` are both `bool` (the submit path calls it only when one is not)."""
    flag("priority", priority)
    flag("once", once)


def plugin(value: object) -> object:
    """A plugin: a module, or an object with hook implementations (not a name or a number)."""
    if isinstance(value, ModuleType):
        return value
    if value is None or isinstance(value, str | bytes | int | float | list | tuple | dict | set):
        raise TypeError(
            "with_plugins takes plugin objects or modules (import the module first; entry-point "
            f"plugins load by themselves), got {type(value).__name__}: {value!r}"
        )
    return value
