"""When the agent may sync: a daily time window, a check command, and back-off after failures."""

from __future__ import annotations

import random
import re
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, time

from robosync.errors import InvalidInput

_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True)
class SyncWindow:
    """A daily ``HH:MM-HH:MM`` window in local time; it may span midnight (``22:00-06:00``)."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> SyncWindow:
        """``"22:00-06:00"`` → a window; InvalidInput saying the form otherwise."""
        m = _WINDOW.match(text)
        if m is None:
            raise InvalidInput(f"{text!r} is not a time window; write e.g. 22:00-06:00")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if not (h1 < 24 and h2 < 24 and m1 < 60 and m2 < 60):
            raise InvalidInput(f"{text!r}: hours go to 23 and minutes to 59")
        return cls(time(h1, m1), time(h2, m2))

    def contains(self, moment: datetime) -> bool:
        """Whether ``moment`` (local time) is inside the window."""
        now = moment.time().replace(tzinfo=None)
        if self.start == self.end:
            return True
        if self.start < self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def check_passes(command: str, timeout: float = 30.0) -> bool:
    """Whether the shell ``command`` exits 0 within ``timeout`` seconds (e.g. a Wi-Fi check)."""
    try:
        done = subprocess.run(
            command,
            shell=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
        )
    except (subprocess.TimeoutExpired, OSError):
        return False
    return done.returncode == 0


@dataclass
class Backoff:
    """Seconds to wait after each consecutive failure: doubling from ``base``, at most ``cap``.

    "Equal jitter" (half the step plus a random share of the other half):
    robots that lost the same link come back spread out, yet never sooner
    than half the step.
    """

    base: float = 2.0
    cap: float = 300.0
    failures: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def next_delay(self) -> float:
        """Count a failure; the pause before the next attempt."""
        self.failures += 1
        step = min(self.cap, self.base * 2 ** (self.failures - 1))
        return step / 2 + self.rng.uniform(0, step / 2)

    def reset(self) -> None:
        """A success: the next failure starts from ``base`` again."""
        self.failures = 0
