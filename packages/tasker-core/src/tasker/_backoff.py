"""Capped exponential backoff with jitter, for re-creating resources."""

from __future__ import annotations

import random
from dataclasses import dataclass

from tasker import _validate as validate

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays between attempts to create a resource.

    Attempt `n` (from 0) waits `min(maximum, initial * 2**n)`, scaled by a random factor in
    `[0.5, 1]` so that workers failing together do not retry in lockstep.

    Attributes:
        initial: the first delay, in seconds.
        maximum: the cap on any delay, in seconds.
        broken_after: how long, in seconds, the pool may have no live worker at all before the
            manager declares itself broken and fails the queued tasks (`math.inf`: never).
    """

    initial: float = 0.05
    maximum: float = 2.0
    broken_after: float = 10.0

    def __post_init__(self) -> None:
        for name in ("initial", "maximum"):
            validate.seconds(name, getattr(self, name))
        # math.inf: never declare the manager broken
        validate.seconds("broken_after", self.broken_after, allow_inf=True)
        if self.maximum < self.initial:
            raise ValueError(
                f"maximum must be >= initial, got initial={self.initial!r}, "
                f"maximum={self.maximum!r}"
            )

    def delay(self, failures: int) -> float:
        """The delay after `failures` consecutive failures (`failures` >= 1)."""
        exponent = min(failures - 1, 62)
        return min(self.maximum, self.initial * 2.0**exponent) * random.uniform(0.5, 1.0)
