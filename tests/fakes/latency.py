"""What the fakes share to behave like the real platforms under load: a latency profile with
jitter, and a token bucket for documented rate limits."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Latency:
    """How long each call takes: uniform between ``low_ms`` and ``high_ms`` (the jitter),
    plus, for ``tail`` of the calls, up to ``tail_ms`` more. All zero: answer at once."""

    low_ms: float = 0.0
    high_ms: float = 0.0
    tail: float = 0.0
    tail_ms: float = 0.0

    def sample(self, rng: random.Random | None = None) -> float:
        rng = rng or random
        ms = rng.uniform(self.low_ms, self.high_ms) if self.high_ms else self.low_ms
        if self.tail and rng.random() < self.tail:
            ms += rng.uniform(0, self.tail_ms)
        return ms / 1000

    async def wait(self) -> None:
        delay = self.sample()
        if delay > 0:
            await asyncio.sleep(delay)

    def describe(self) -> str:
        if not self.high_ms and not self.low_ms:
            return "no added latency"
        text = f"{self.low_ms:.0f}-{self.high_ms:.0f} ms uniform"
        if self.tail:
            text += f", {self.tail:.0%} of calls up to {self.tail_ms:.0f} ms more"
        return text


# What the platforms take from a nearby region (Slack's Web API; the Bot Connector), with a
# small tail of slow calls.
SLACK = Latency(80, 150, tail=0.01, tail_ms=150)
TEAMS = Latency(120, 250, tail=0.01, tail_ms=250)


@dataclass
class Bucket:
    """A token bucket: ``rate`` per second, up to ``burst`` at once."""

    rate: float
    burst: float
    tokens: float = -1.0
    at: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            if self.tokens < 0:
                self.tokens = self.burst
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False
