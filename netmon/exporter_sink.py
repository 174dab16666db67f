"""Where the exporter's samples go: one description of each family, two ways to collect them.

Every family netmon exports per target is described once (`Family`: name, type, help, label
names) and filled by one function per subject (targets, devices, rooms, calls), which hands
each sample to a `Sink`:

- `MetricSink` builds prometheus_client families, as a collector's `collect()` returns them
  (the reference: tests, `generate_latest`, and any scraper format prometheus_client knows);
- `TextSink` writes the exposition lines of one target straight away, cheaply, so that
  `netmon.exposition` can keep them per target and per family, and re-render a target only
  when its state changed.

Both see the same calls, so the two renderings cannot drift apart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from functools import lru_cache
from itertools import accumulate
from typing import Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.openmetrics.exposition import (
    ALLOWUTF8,
    UNDERSCORES,
    escape_label_name,
    escape_metric_name,
)
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from netmon.windows import Histogram


class Family:
    """One metric family's description; `index` its number among all numbered families."""

    __slots__ = ("doc", "index", "kind", "labels", "legacy", "name", "order", "sample", "shown")

    def __init__(self, name: str, kind: str, doc: str, labels: Sequence[str] = ()) -> None:
        if kind == "counter" and name.endswith("_total"):
            name = name[: -len("_total")]  # as prometheus_client names a counter family
        self.name = name
        self.kind = kind  # gauge, counter or histogram
        self.doc = doc
        self.labels = tuple(labels)
        self.sample = name + "_total" if kind == "counter" else name
        # prometheus_client writes a sample's labels sorted by name.
        self.order = tuple(sorted(range(len(self.labels)), key=lambda j: self.labels[j]))
        self.index = -1
        self.shown = metric_name(self.sample)
        self.legacy = all(map(legacy_name, (self.sample, *self.labels)))

    def metric(self) -> Metric:
        if self.kind == "counter":
            return CounterMetricFamily(self.name, self.doc, labels=self.labels)
        if self.kind == "histogram":
            return HistogramMetricFamily(self.name, self.doc, labels=self.labels)
        return GaugeMetricFamily(self.name, self.doc, labels=self.labels)


_numbered: list[Family] = []


def numbered(*families: Family) -> tuple[Family, ...]:
    """A subject's families, each given its number (unique across subjects)."""
    for family in families:
        family.index = len(_numbered)
        _numbered.append(family)
    return families


def header(name: str, kind: str, doc: str, openmetrics: bool) -> str:
    """A family's HELP and TYPE lines, as prometheus_client's encoders write them."""
    if openmetrics:
        escaped = doc.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
        shown = metric_name(name)
        return f"# HELP {shown} {escaped}\n# TYPE {shown} {kind}\n"
    if kind == "counter":
        name += "_total"
    escaped = doc.replace("\\", r"\\").replace("\n", r"\n")
    shown = metric_name(name)
    return f"# HELP {shown} {escaped}\n# TYPE {shown} {kind}\n"


@lru_cache(maxsize=4096)
def metric_name(name: str) -> str:
    return escape_metric_name(name, UNDERSCORES)


@lru_cache(maxsize=4096)
def label_name(name: str) -> str:
    return escape_label_name(name, UNDERSCORES)


@lru_cache(maxsize=4096)
def legacy_name(name: str) -> bool:
    """Whether a name reads the same under every escaping the fast path serves."""
    return escape_metric_name(name, ALLOWUTF8) == name == escape_metric_name(name, UNDERSCORES)


def label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def number(value: float) -> str:
    """floatToGoString, with the common case (a small whole count) short-cut."""
    if type(value) is int and 0 <= value < 1_000_000:
        return f"{value}.0"
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


class Sink(Protocol):
    def add(self, family: Family, values: Sequence[str], value: float) -> None: ...

    def add_histogram(self, family: Family, values: Sequence[str], hist: Histogram) -> None: ...

    def add_age(self, family: Family, values: Sequence[str], since: float, now: float) -> None:
        """A value that grows with time: `now - since` (a probe result's age)."""
        ...

    def add_sample(self, family: Family, name: str, labels: dict[str, str], value: float) -> None:
        """A sample whose label names are its own (free inventory labels, SNMP modules)."""
        ...


class MetricSink:
    """Builds prometheus_client families: the reference rendering. Families made up as they
    come (not numbered: SNMP modules) are one per name, as the first one of a name says."""

    def __init__(self, families: Iterable[Family]) -> None:
        self.metrics = {family: family.metric() for family in families}
        self.others: dict[str, Metric] = {}

    def __getitem__(self, family: Family) -> Metric:
        return self.metrics[family]

    def add(self, family: Family, values: Sequence[str], value: float) -> None:
        metric = self.metrics[family]
        assert isinstance(metric, GaugeMetricFamily | CounterMetricFamily)
        metric.add_metric(values, value)

    def add_histogram(self, family: Family, values: Sequence[str], hist: Histogram) -> None:
        metric = self.metrics[family]
        assert isinstance(metric, HistogramMetricFamily)
        metric.add_metric(values, buckets=hist.cumulative(), sum_value=hist.sum)

    def add_age(self, family: Family, values: Sequence[str], since: float, now: float) -> None:
        self.add(family, values, now - since)

    def add_sample(self, family: Family, name: str, labels: dict[str, str], value: float) -> None:
        if family.index >= 0:
            metric = self.metrics[family]
        else:
            metric = self.others.get(family.name) or family.metric()
            self.others.setdefault(family.name, metric)
        metric.samples.append(Sample(name, labels, value))


# (label names, label values) → their text; (sample name, label items) → a sample's prefix.
LabelCache = dict[tuple[object, ...], str]
BucketCache = dict[tuple[Family, tuple[str, ...]], tuple[str, str, str, str]]


class TextSink:
    """Writes one target's exposition lines, per family (`lines[family.index]`).

    `ages` keeps what grows with time apart ((family index, line prefix, since)), so a cached
    target's ages are written at each scrape; `others` holds families made up as they come
    (SNMP modules): name → (kind, help, lines). The label caches are the target's, kept from
    one render to the next.
    """

    __slots__ = ("ages", "buckets", "labels", "legacy", "lines", "others")

    def __init__(self, labels: LabelCache, buckets: BucketCache) -> None:
        self.lines: dict[int, list[str]] = {}
        self.ages: list[tuple[int, str, float]] = []
        self.others: dict[str, tuple[str, str, list[str]]] = {}
        self.labels = labels
        self.buckets = buckets
        # Whether every name reads the same under UTF-8 and underscore escaping.
        self.legacy = True

    def _prefix(self, family: Family, values: Sequence[str]) -> str:
        key = (family.labels, tuple(values))
        labels = self.labels.get(key)
        if labels is None:
            names = family.labels
            labels = self.labels[key] = ",".join(
                f'{label_name(names[j])}="{label_value(values[j])}"'
                for j in family.order
                if j < len(values)
            )
        if not family.legacy:
            self.legacy = False
        return f"{family.shown}{{{labels}}} " if labels else f"{family.shown} "

    def add(self, family: Family, values: Sequence[str], value: float) -> None:
        line = f"{self._prefix(family, values)}{number(value)}\n"
        if (lines := self.lines.get(family.index)) is None:
            self.lines[family.index] = [line]
        else:
            lines.append(line)

    def add_histogram(self, family: Family, values: Sequence[str], hist: Histogram) -> None:
        key = (family, tuple(values))
        parts = self.buckets.get(key)
        if parts is None:
            parts = self.buckets[key] = _bucket_parts(family, values)
        head, tail, count, total = parts
        if not legacy_name(family.name + "_bucket"):
            self.legacy = False
        out = self.lines.setdefault(family.index, [])
        running = list(accumulate(hist.counts))
        les = _les(hist.bounds)
        if running[-1] < 1_000_000:  # whole counts as number() writes them, without the call
            out += [f"{head}{le}{tail}{n}.0\n" for le, n in zip(les, running, strict=True)]
        else:
            out += [f"{head}{le}{tail}{number(n)}\n" for le, n in zip(les, running, strict=True)]
        out.append(f"{count}{number(running[-1])}\n")
        out.append(f"{total}{number(hist.sum)}\n")

    def add_age(self, family: Family, values: Sequence[str], since: float, now: float) -> None:
        self.ages.append((family.index, self._prefix(family, values), since))

    def add_sample(self, family: Family, name: str, labels: dict[str, str], value: float) -> None:
        key = (name, *labels.items())
        prefix = self.labels.get(key)
        if prefix is None:
            shown = ",".join(
                f'{label_name(k)}="{label_value(v)}"' for k, v in sorted(labels.items())
            )
            prefix = f"{metric_name(name)}{{{shown}}} " if shown else f"{metric_name(name)} "
            self.labels[key] = prefix
        if not (legacy_name(name) and all(map(legacy_name, labels))):
            self.legacy = False
        line = f"{prefix}{number(value)}\n"
        if family.index >= 0:
            self.lines.setdefault(family.index, []).append(line)
        else:
            self.others.setdefault(family.name, (family.kind, family.doc, []))[2].append(line)


@lru_cache(maxsize=64)
def _les(bounds: tuple[float, ...]) -> tuple[str, ...]:
    """The `le` label of each bucket, as Histogram.cumulative() names them."""
    return tuple(f'le="{"+Inf" if b == math.inf else repr(b)}"' for b in (*bounds, math.inf))


def _bucket_parts(family: Family, values: Sequence[str]) -> tuple[str, str, str, str]:
    """What surrounds a bucket's `le` (sorted among the labels, as prometheus_client places
    it), and the _count and _sum line prefixes."""
    pairs = [
        (family.labels[j], f'{label_name(family.labels[j])}="{label_value(values[j])}"')
        for j in family.order
        if j < len(values)
    ]
    before = ",".join(text for name, text in pairs if name < "le")
    after = ",".join(text for name, text in pairs if name >= "le")
    bucket = metric_name(family.name + "_bucket")
    head = f"{bucket}{{{before}," if before else f"{bucket}{{"
    tail = f",{after}}} " if after else "} "
    shown = ",".join(text for _, text in pairs)
    shown = f"{{{shown}}}" if shown else ""
    count, total = (metric_name(family.name + suffix) for suffix in ("_count", "_sum"))
    return head, tail, f"{count}{shown} ", f"{total}{shown} "
