"""The /metrics body at any inventory size without stalling the probes: kept per target.

Each target's exposition lines are written by the same functions as the reference collector
(`netmon.exporter`), into a `TextSink`, and kept per target and per family. A target is
written again only when its state changed: an observation, a trap or a readiness verdict
(heard through the store's listeners), its inventory entry (a new `Target` or `TargetState`),
or its echo windows pruned (`IcmpState.pruned`). A scrape writes the changed targets, in
slices between which the event loop runs, and then joins the kept lines family by family
(HELP and TYPE once, all samples of a family together, as the text formats require). Probe
ages grow with time: those lines keep their prefix and get their value at each scrape.

netmon's own families and the other collectors (process, alerting, traps) are small and go
through prometheus_client's encoders; so does a scrape that asks for a name escaping other
than underscores (or UTF-8 with names that would need it), from scratch, as before.

gzip (what Prometheus asks for) is done in a worker thread: zlib lets go of the GIL.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.exposition import ALLOWUTF8, UNDERSCORES

from netmon.exporter import NetmonRegistry, render, self_families
from netmon.exporter_calls import CALL_FAMILIES, emit_calls
from netmon.exporter_devices import (
    DEVICE_FAMILIES,
    EVENT_FAMILIES,
    emit_device,
    emit_events,
    emit_modules,
)
from netmon.exporter_rooms import ROOM_FAMILIES, emit_room
from netmon.exporter_sink import BucketCache, Family, LabelCache, TextSink, header, number
from netmon.exporter_targets import TARGET_FAMILIES, emit_target
from netmon.slices import Slices
from netmon.state import CheckDone, TargetState

# The families kept per target, in the order a scrape writes them; the modules' families
# (made up as devices bring them) come after the devices'.
SUBJECTS = (TARGET_FAMILIES, DEVICE_FAMILIES, EVENT_FAMILIES, ROOM_FAMILIES, CALL_FAMILIES)
# Rooms and calls go in the inventory's order, the rest sorted by target id.
INVENTORY_ORDER_FAMILIES = frozenset(f.index for f in (*ROOM_FAMILIES, *CALL_FAMILIES))


class _Entry:
    """One target's kept lines: `parts[family.index]`, for the families it has lines in
    (`in_inventory_order` for those written in the inventory's order)."""

    __slots__ = (
        "ages", "buckets", "in_inventory_order", "labels", "legacy", "modules", "parts", "pruned",
        "samples", "state", "target",
    )  # fmt: skip

    def __init__(self, state: TargetState) -> None:
        self.state = state
        self.target = state.target
        self.pruned = state.icmp.pruned if state.icmp is not None else -1
        self.parts: dict[int, str] = {}
        self.in_inventory_order: dict[int, str] = {}  # rooms' and calls' families
        self.ages: list[tuple[int, str, float]] = []
        self.modules: dict[str, tuple[str, str, str]] = {}
        self.labels: LabelCache = {}
        self.buckets: BucketCache = {}
        self.legacy = True
        self.samples = 0

    def current(self, state: TargetState) -> bool:
        """Whether these lines still say what `state` says (bar an observation since)."""
        icmp = state.icmp
        return (
            self.state is state
            and self.target is state.target
            and self.pruned == (icmp.pruned if icmp is not None else -1)
        )


@dataclass(frozen=True, slots=True)
class Scrape:
    body: list[bytes]
    content_type: str


class _Collected:
    """Families built on demand, as an encoder's registry."""

    def __init__(self, families: Callable[[], Iterable[Metric]]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families()


class Exposition:
    """The store's families for `/metrics`, kept per target (see the module's doc)."""

    def __init__(self, registry: NetmonRegistry) -> None:
        self._registry = registry
        self._store = registry.store
        self._entries: dict[str, _Entry] = {}
        self._dirty: set[str] = set()
        self._lock = asyncio.Lock()
        self.written = 0  # targets written so far (tests, benchmarks: the cache at work)
        store = self._store
        store.on_record(lambda state, _observation: self._dirty.add(state.target.id))
        store.on_trap(lambda state, _event: self._dirty.add(state.target.id))
        store.on_check(self._checked)

    def _checked(self, done: CheckDone) -> None:
        self._dirty.update(endpoint.target for endpoint in done.report.endpoints)

    async def scrape(self, accept: str | None) -> Scrape:
        """A scrape in the format `accept` asks for; the event loop runs between slices."""
        encoder, content_type = choose_encoder(accept or "")
        openmetrics = content_type.startswith("application/openmetrics-text")
        escaping = UNDERSCORES
        if "escaping=" in content_type:
            escaping = content_type.rsplit("escaping=", 1)[1].strip()
        if escaping not in (UNDERSCORES, ALLOWUTF8):  # rare scrapers: from scratch, as before
            return Scrape([render(self._registry, accept)[0]], content_type)
        async with self._lock:
            body: list[bytes] = []
            slices = Slices()
            for chunk in self._store_part(openmetrics, slices):
                if chunk is None:
                    await slices.turn()
                else:
                    body.append(chunk)
        if escaping == ALLOWUTF8 and not all(e.legacy for e in self._entries.values()):
            return Scrape([render(self._registry, accept)[0]], content_type)
        own = encoder(_Collected(lambda: self_families(self._store)))
        if openmetrics:
            own = own.removesuffix(b"# EOF\n")
        others = encoder(_Collected(self._others))
        return Scrape([own, *body, others], content_type)

    def store_text(self, openmetrics: bool = False) -> bytes:
        """The store's families at once, without turns of the loop (tests, benchmarks)."""
        parts = self._store_part(openmetrics, Slices())
        return b"".join(chunk for chunk in parts if chunk is not None)

    def _others(self) -> Iterator[Metric]:
        for collector in self._registry.others:
            yield from collector.collect()

    def _store_part(self, openmetrics: bool, slices: Slices) -> Iterator[bytes | None]:
        """The store's families as bytes; None where the event loop may take a turn."""
        store = self._store
        now = time.monotonic()
        store.prune_windows()  # a target whose rounds stopped must not report old loss
        targets = store.exported_targets()
        in_inventory = list(targets)
        in_order = sorted(in_inventory)
        for gone in [tid for tid in self._entries if tid not in targets]:
            del self._entries[gone]
        self._dirty.intersection_update(targets)
        entries: dict[str, _Entry] = {}  # in target order
        for tid in in_order:
            state = targets.get(tid)
            if state is None:  # removed by a reload while the loop had a turn
                continue
            entry = self._entries.get(tid)
            if entry is None or tid in self._dirty or not entry.current(state):
                self._dirty.discard(tid)
                entry = self._entries[tid] = self._write(tid, state, entry)
            entries[tid] = entry
            if slices.due():
                yield None
        # Each family's lines gathered in one pass over the targets (a target has lines in a
        # few of the ~50 families); ages, only the targets' families have them, valued now.
        texts: dict[int, list[str]] = {}
        ages: dict[int, list[str]] = {}
        for entry in entries.values():
            for index, text in entry.parts.items():
                if (found := texts.get(index)) is None:
                    texts[index] = [text]
                else:
                    found.append(text)
            for index, prefix, since in entry.ages:
                ages.setdefault(index, []).append(f"{prefix}{number(now - since)}\n")
            if slices.due():
                yield None
        for tid in in_inventory:  # rooms and calls: in the inventory's order
            entry = entries.get(tid)
            if entry is not None:
                for index, text in entry.in_inventory_order.items():
                    texts.setdefault(index, []).append(text)
        for families in SUBJECTS:
            for family in families:
                i = family.index
                text = "".join(texts.get(i, ()))
                if i in ages:
                    text += "".join(ages[i])
                yield (_header(family, openmetrics) + text).encode()
                if slices.due():
                    yield None
            if families is DEVICE_FAMILIES:
                yield from _modules(list(entries.values()), openmetrics)

    def _write(self, tid: str, state: TargetState, previous: _Entry | None) -> _Entry:
        self.written += 1
        entry = _Entry(state)
        if (
            previous is not None
            and previous.state is state
            and previous.target is state.target
            and len(previous.labels) + len(previous.buckets) <= 64 + 2 * previous.samples
        ):  # the label strings of the same target, not grown with series gone since
            entry.labels, entry.buckets = previous.labels, previous.buckets
        sink = TextSink(entry.labels, entry.buckets)
        emit_target(sink, tid, state, 0.0)  # its ages are kept apart, valued per scrape
        emit_device(sink, tid, state)
        emit_modules(sink, tid, state)
        emit_events(sink, tid, state)
        emit_room(sink, tid, state)
        emit_calls(sink, tid, state)
        for index, lines in sink.lines.items():
            if index in INVENTORY_ORDER_FAMILIES:
                entry.in_inventory_order[index] = "".join(lines)
            else:
                entry.parts[index] = "".join(lines)
        entry.samples = sum(map(len, sink.lines.values()))
        entry.ages = sink.ages
        entry.modules = {
            name: (kind, doc, "".join(lines)) for name, (kind, doc, lines) in sink.others.items()
        }
        entry.legacy = sink.legacy
        return entry


def _header(family: Family, openmetrics: bool) -> str:
    return header(family.name, family.kind, family.doc, openmetrics)


def _modules(picked: list[_Entry], openmetrics: bool) -> Iterator[bytes]:
    """The SNMP modules' families: one per name, as the first target with it says."""
    modules: dict[str, tuple[str, str, list[str]]] = {}
    for entry in picked:
        for name, (kind, doc, text) in entry.modules.items():
            modules.setdefault(name, (kind, doc, []))[2].append(text)
    for name, (kind, doc, texts) in modules.items():
        yield (header(name, kind, doc, openmetrics) + "".join(texts)).encode()


def exposition_for(registry: CollectorRegistry) -> Exposition | None:
    """The incremental exposition of netmon's own registry; None for any other."""
    return Exposition(registry) if isinstance(registry, NetmonRegistry) else None


def gzipped(chunks: list[bytes]) -> bytes:
    """A gzip stream of the chunks (in a worker thread: zlib lets go of the GIL)."""
    # Level 1: half the time of the default 6 for 15 % more bytes; the scrape waits for it.
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    out = [compressor.compress(chunk) for chunk in chunks]
    out.append(compressor.flush())
    return b"".join(out)


def accepts_gzip(header_value: str | None) -> bool:
    """Whether an Accept-Encoding header takes gzip (and does not refuse it with q=0)."""
    for item in (header_value or "").split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip"):
            quality = params.strip().removeprefix("q=").strip() if params else "1"
            try:
                return float(quality) > 0
            except ValueError:
                return True
    return False
