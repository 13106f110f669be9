"""The highest offered rate that meets a latency objective (``--slo``), found step by step.

Sans-I/O: :class:`RateSearch` says which rate to run next and is told whether that step met
the objective; the driver runs the steps. The search starts at one rate, doubles it while the
steps pass (halves it while they fail), then bisects between the highest passing and the
lowest failing rate until the two are within ``precision`` of each other or the step budget
is spent. A step passes when every percentile of the objective holds, nothing was lost and no
request failed. (A network that falls behind shows it in the percentiles: the driver waits for
a step's stragglers, so a backlog's latency is counted.)
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

#: The percentiles an objective can name (the step's latency figures).
PERCENTILES = ("p50", "p90", "p99")

#: Below this rate the search gives up (every step failed).
MIN_RATE = 1.0


def parse_slo(text: str) -> dict[str, float]:
    """``p50=15,p99=60`` (milliseconds) → ``{"p50": 15.0, "p99": 60.0}``."""
    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in PERCENTILES:
            raise argparse.ArgumentTypeError(
                f"not an objective: {part!r} (e.g. p50=15,p99=60: milliseconds for "
                f"{', '.join(PERCENTILES)})"
            )
        try:
            ms = float(value.strip().lower().removesuffix("ms"))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{key}: not a number of milliseconds: {value!r}"
            ) from None
        if not ms > 0:
            raise argparse.ArgumentTypeError(f"{key} must be positive, got {value!r}")
        if key in out:
            raise argparse.ArgumentTypeError(f"{key} given twice")
        out[key] = ms
    if not out:
        raise argparse.ArgumentTypeError("an objective names at least one percentile: p50=15")
    return out


def describe(slo: dict[str, float]) -> str:
    return " and ".join(f"{k} ≤ {v:g} ms" for k, v in slo.items())


def shortfall(step: dict[str, Any], slo: dict[str, float]) -> str:
    """Why ``step`` (a result of the driver's ``run_step``) misses the objective; ``""`` if it
    meets it."""
    why = []
    if step["lost"]:
        why.append(f"{step['lost']} lost")
    errors = sum(step["errors"].values())
    if errors:
        why.append(f"{errors} errors")
    lat = step["latency_ms"]
    for k, limit in slo.items():
        if lat[k] > limit:
            why.append(f"{k} {lat[k]:.1f} ms > {limit:g}")
    return ", ".join(why)


@dataclass
class RateSearch:
    start: float
    max_steps: int = 8
    precision: float = 0.1
    #: (rate, passed, why not) of each step run, in order
    tried: list[tuple[float, bool, str]] = field(default_factory=list)

    def next_rate(self) -> float | None:
        """The rate of the next step, or None when the search is over."""
        if len(self.tried) >= self.max_steps:
            return None
        if not self.tried:
            return self.start
        lo = self.best()
        failed = [r for r, ok, _ in self.tried if not ok and (lo is None or r > lo)]
        hi = min(failed, default=None)
        if hi is None:
            assert lo is not None
            r = float(round(lo * 2))
            return r if r > lo else None  # (the driver starts at MIN_RATE or more)
        if lo is None:
            r = float(round(hi / 2))
            return r if r >= MIN_RATE and r < hi else None
        if hi / lo <= 1 + self.precision:
            return None
        r = float(round((lo + hi) / 2))
        return r if lo < r < hi else None

    def record(self, rate: float, why_not: str) -> None:
        self.tried.append((rate, not why_not, why_not))

    def best(self) -> float | None:
        """The highest rate that passed."""
        return max((r for r, ok, _ in self.tried if ok), default=None)

    def first_failing(self) -> tuple[float, str] | None:
        """The lowest failing rate above the best, and why it failed."""
        lo = self.best()
        above = [(r, why) for r, ok, why in self.tried if not ok and (lo is None or r > lo)]
        return min(above, default=None)

    def summary(self, slo: dict[str, float]) -> dict[str, Any]:
        fail = self.first_failing()
        return {
            "objective_ms": slo,
            "meets_up_to_per_s": self.best(),
            "fails_at_per_s": fail[0] if fail else None,
            "fails_because": fail[1] if fail else "",
            "steps": [{"offered_per_s": r, "met": ok, "why_not": why} for r, ok, why in self.tried],
        }

    def sentence(self, slo: dict[str, float]) -> str:
        best, fail = self.best(), self.first_failing()
        head = f"capacity: {describe(slo)}, nothing lost"
        if best is None:
            if fail is None:
                return f"{head}: no step was run"
            return f"{head}: not met at any rate tried (lowest {fail[0]:g}/s: {fail[1]})"
        if fail is None:
            return f"{head}: held at every rate tried, up to {best:g}/s (the step budget ended)"
        return f"{head}: held up to {best:g}/s; {fail[0]:g}/s did not ({fail[1]})"
