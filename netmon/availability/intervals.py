"""Sets of time as sorted, disjoint, half-open intervals [start, end): union, intersection,
difference, total. The accounting is these operations and nothing cleverer, so a figure can be
checked by hand."""

from __future__ import annotations

from collections.abc import Iterable

Span = tuple[float, float]
Spans = list[Span]


def normal(spans: Iterable[Span]) -> Spans:
    """Sorted, empty ones dropped, overlapping and touching ones merged."""
    out: Spans = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def union(*sets: Spans) -> Spans:
    return normal(span for spans in sets for span in spans)


def intersect(a: Spans, b: Spans) -> Spans:
    out: Spans = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def subtract(a: Spans, b: Spans) -> Spans:
    out: Spans = []
    j = 0
    for start, end in a:
        while j < len(b) and b[j][1] <= start:
            j += 1
        k, cursor = j, start
        while k < len(b) and b[k][0] < end:
            if b[k][0] > cursor:
                out.append((cursor, b[k][0]))
            cursor = max(cursor, b[k][1])
            k += 1
        if cursor < end:
            out.append((cursor, end))
    return out


def clip(spans: Spans, start: float, end: float) -> Spans:
    return intersect(spans, [(start, end)])


def total(spans: Iterable[Span]) -> float:
    return sum(end - start for start, end in spans)
