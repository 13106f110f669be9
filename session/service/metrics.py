"""Counters, gauges, histograms and info metrics rendered in the Prometheus text exposition
format (version 0.0.4), without prometheus_client: it costs a node about 4.8 MB of RSS, as it
imports ``http.server``, ``urllib.request`` and ``email`` (docs/performance.md, "A node's
footprint"). Any service can use it; the node does.

A :class:`Registry` holds metric families in the order they were made and renders them
(:meth:`Registry.render`). The families follow prometheus_client's calling conventions, so
callers read the same: ``Counter(name, doc, labelnames, registry=r)``, ``.labels(*values)``
(the child is kept: look it up once and keep it), ``.inc()``, ``Gauge.set()`` /
``.set_function()``, ``Histogram.observe()``, ``Info.info({...})``. The text is what
prometheus_client's ``generate_latest`` writes: a counter named ``x`` is exposed as
``x_total`` (its HELP and TYPE lines too); a histogram as ``x_bucket{le=...}`` (cumulative,
``+Inf`` last; NaN is counted there), ``x_count`` and ``x_sum``; an info as the gauge
``x_info`` with its labels and value 1. No ``_created`` series are exposed.

Metrics are updated from the event loop's thread (a node's handlers); nothing here locks.
"""

from __future__ import annotations

import abc
import bisect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

#: Content type of the Prometheus text exposition format this module renders.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: prometheus_client's default histogram buckets.
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


def format_value(v: float) -> str:
    """A sample value or bucket bound as Prometheus writes it (``1.0``, ``+Inf``, ``NaN``)."""
    if v == math.inf:
        return "+Inf"
    if v == -math.inf:
        return "-Inf"
    if math.isnan(v):
        return "NaN"
    return repr(float(v))


def escape_label(value: str) -> str:
    """A label value escaped for the text format: backslash, double quote, newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(doc: str) -> str:
    return doc.replace("\\", "\\\\").replace("\n", "\\n")


def _check_name(name: str) -> None:
    ok = name and not name[0].isdigit() and all(c.isalnum() or c in "_:" for c in name)
    if not ok or not name.isascii():
        raise ValueError(f"not a valid metric or label name: {name!r}")


class Registry:
    """The metric families of one service (or one node in a test process), in order."""

    def __init__(self) -> None:
        self._families: list[_Family[Any]] = []
        self._names: set[str] = set()

    def register(self, family: _Family[Any]) -> None:
        if family.name in self._names:
            raise ValueError(f"a metric named {family.name} is already registered")
        self._names.add(family.name)
        self._families.append(family)

    def render(self) -> bytes:
        """Every family in the text exposition format."""
        out: list[str] = []
        for family in self._families:
            family.render(out)
        return "".join(out).encode()


C = TypeVar("C")


class _Family(abc.ABC, Generic[C]):
    """A named metric with label names; one child per tuple of label values."""

    kind = ""
    suffix = ""  # added to the name in HELP/TYPE lines (a counter's "_total", an info's "_info")
    #: The suffix is taken off a name given with it (a counter named "x_total" is "x").
    trims_suffix = False

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        registry: Registry | None = None,
    ) -> None:
        if self.trims_suffix:
            name = name.removesuffix(self.suffix)
        _check_name(name)
        for label in labelnames:
            _check_name(label)
            if label.startswith("__") or label == "le":
                raise ValueError(f"reserved label name: {label}")
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], C] = {}
        if not labelnames:
            self._children[()] = self._new_child()
        if registry is not None:
            registry.register(self)

    @abc.abstractmethod
    def _new_child(self) -> C:
        """A new series of this family (each kind its own value class)."""

    def labels(self, *values: object) -> C:
        """The child for these label values (made on first use)."""
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {len(values)}")
        key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            if not self.labelnames:
                raise ValueError(f"{self.name} has no labels")
            child = self._children[key] = self._new_child()
        return child

    def _only(self) -> C:
        if self.labelnames:
            raise ValueError(f"{self.name} has labels: use .labels() first")
        return self._children[()]

    def _label_text(self, key: tuple[str, ...], extra: str = "") -> str:
        """The ``{...}`` of a sample: the series' labels, then ``extra`` (already written
        pairs, e.g. a bucket's ``le``); nothing when there are none."""
        pairs = [f'{n}="{escape_label(v)}"' for n, v in zip(self.labelnames, key, strict=True)]
        if extra:
            pairs.append(extra)
        return "{" + ",".join(pairs) + "}" if pairs else ""

    def render(self, out: list[str]) -> None:
        full = self.name + self.suffix
        out.append(f"# HELP {full} {_escape_help(self.documentation)}\n")
        out.append(f"# TYPE {full} {self.kind}\n")
        for key, child in self._children.items():
            self._samples(out, key, child)

    @abc.abstractmethod
    def _samples(self, out: list[str], key: tuple[str, ...], child: C) -> None:
        """Append the exposition lines of one series (each kind its own sample names)."""


class CounterValue:
    """One counter series."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        self.value += amount


class Counter(_Family[CounterValue]):
    """A count that only goes up, exposed as ``<name>_total``."""

    kind = "counter"
    suffix = "_total"
    trims_suffix = True

    def _new_child(self) -> CounterValue:
        return CounterValue()

    def inc(self, amount: float = 1.0) -> None:
        self._only().inc(amount)

    @property
    def value(self) -> float:
        return self._only().value

    def _samples(self, out: list[str], key: tuple[str, ...], child: CounterValue) -> None:
        out.append(f"{self.name}_total{self._label_text(key)} {format_value(child.value)}\n")


class GaugeValue:
    """One gauge series: set, moved, or read from a function at render time."""

    __slots__ = ("fn", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.fn: Callable[[], float] | None = None

    def set(self, value: float) -> None:
        self.value = float(value)

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def set_function(self, fn: Callable[[], float]) -> None:
        """Read the value from ``fn`` whenever the metrics are rendered."""
        self.fn = fn

    def get(self) -> float:
        return float(self.fn()) if self.fn is not None else self.value


class Gauge(_Family[GaugeValue]):
    """A value that goes up and down."""

    kind = "gauge"

    def _new_child(self) -> GaugeValue:
        return GaugeValue()

    def set(self, value: float) -> None:
        self._only().set(value)

    def inc(self, amount: float = 1.0) -> None:
        self._only().inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        self._only().dec(amount)

    def set_function(self, fn: Callable[[], float]) -> None:
        self._only().set_function(fn)

    @property
    def value(self) -> float:
        return self._only().get()

    def _samples(self, out: list[str], key: tuple[str, ...], child: GaugeValue) -> None:
        out.append(f"{self.name}{self._label_text(key)} {format_value(child.get())}\n")


class HistogramValue:
    """One histogram series: counts per bucket (not cumulative until rendered), sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.sum += value
        # the first bound >= value; NaN (never <= a bound) is counted under +Inf
        i = len(self.counts) - 1 if math.isnan(value) else bisect.bisect_left(self.bounds, value)
        self.counts[i] += 1


class Histogram(_Family[HistogramValue]):
    """Observations counted in buckets (upper bounds; ``+Inf`` is added)."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Iterable[float] = DEFAULT_BUCKETS,
        registry: Registry | None = None,
    ) -> None:
        bounds = sorted(float(b) for b in buckets)
        if not bounds or bounds[-1] != math.inf:
            bounds.append(math.inf)
        if len(set(bounds)) != len(bounds):
            raise ValueError("histogram buckets must be distinct")
        self._bounds = tuple(bounds)
        self._les = tuple(f'le="{format_value(b)}"' for b in self._bounds)
        super().__init__(name, documentation, labelnames, registry=registry)

    def _new_child(self) -> HistogramValue:
        return HistogramValue(self._bounds)

    def observe(self, value: float) -> None:
        self._only().observe(value)

    def _samples(self, out: list[str], key: tuple[str, ...], child: HistogramValue) -> None:
        total = 0
        for le, n in zip(self._les, child.counts, strict=True):
            total += n
            out.append(f"{self.name}_bucket{self._label_text(key, le)} {format_value(total)}\n")
        labels = self._label_text(key)
        out.append(f"{self.name}_count{labels} {format_value(total)}\n")
        out.append(f"{self.name}_sum{labels} {format_value(child.sum)}\n")


class InfoValue:
    """The key-value pairs of an info metric."""

    __slots__ = ("pairs",)

    def __init__(self) -> None:
        self.pairs: dict[str, str] = {}

    def info(self, pairs: Mapping[str, str]) -> None:
        for k in pairs:
            _check_name(k)
        self.pairs = {k: str(v) for k, v in pairs.items()}


class Info(_Family[InfoValue]):
    """Key-value pairs about the service, exposed as the gauge ``<name>_info`` = 1."""

    kind = "gauge"
    suffix = "_info"

    def _new_child(self) -> InfoValue:
        return InfoValue()

    def info(self, pairs: Mapping[str, str]) -> None:
        self._only().info(pairs)

    def _samples(self, out: list[str], key: tuple[str, ...], child: InfoValue) -> None:
        own = ",".join(f'{k}="{escape_label(v)}"' for k, v in child.pairs.items())
        out.append(f"{self.name}_info{self._label_text(key, own)} 1.0\n")


__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_BUCKETS",
    "Counter",
    "CounterValue",
    "Gauge",
    "GaugeValue",
    "Histogram",
    "HistogramValue",
    "Info",
    "InfoValue",
    "Registry",
    "escape_label",
    "format_value",
]
