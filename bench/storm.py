"""`make storm`: a trap storm against the running service, and what it does to the rest (issue 14).

The goal, as the issue states it: 20,000 traps in 10 s from 50 sources, a mix of valid, wrong
community, forged v3 and malformed: polling of 215 targets continues on time (scheduler lag
p99 < 100 ms), no false alert, no unbounded series, memory flat.

How. ONE `netmon run` (the real service, its default settings but for what the bench needs):
215 endpoints on loopback addresses 127.0.1.1-215 (answered by the kernel) with the ICMP probe
at its defaults (1 s), a trap receiver on an ephemeral UDP port of 127.0.0.1 with its default
rate limit, alerting on with one webhook sink whose far end is this process. The 50 senders are
sockets bound to 127.0.9.1-50: the first half are inventory targets (switches netmon does not
poll, with the campaign's community and v3 user as `trap_credentials`), the second half unknown.
Each storm sends `--traps` datagrams over `--seconds`, evenly paced, from the 50 sources in turn,
in a random mix (`MIX`): valid v2c (linkDown/linkUp with random ifIndexes, coldStart), v2c with
a wrong community, forged v3 (the configured user name, a random engine ID each, a garbage
digest), and malformed datagrams (truncated BER, OIDs of thousands of arcs or huge arcs, random
bytes). The storm runs `--rounds` times (2): what the first round adds in series and memory is
the price of 50 new senders; the second round, the same senders again, must add nothing.

What it measures, from netmon's /metrics before and after each storm and a quiet baseline of
the same length before it: the ICMP scheduler lag (p99 from the histogram's delta over the
storm, interpolated inside its bucket as Prometheus' histogram_quantile does), skipped runs,
trap counters by result and reason, the number of series (sample lines in /metrics), netmon's
RSS (VmRSS) before, right after each storm and `--settle` (60) s after the last; and the alerts
the webhook received from the first storm to the end: those of trap devices (InterfaceDown,
DeviceRebooted: legitimate, at most 96 interfaces per device by design) apart from any other
(false: an EndpointDown of the 215 endpoints, anything else).

Output: the table (figure | goal | measured | met/MISS) and bench/results/storm-<UTC>.json.
Exit 0 whatever the verdicts (it is a report), 1 when the harness fails. Needs no root (netmon
falls back to unprivileged ICMP sockets; as root they are raw). Not part of `make test` nor
`make bench`.

    make storm
    .venv/bin/python -m bench.storm --traps 5000 --seconds 5 --rounds 1 --settle 5  # quick
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from bench import storm_memory
from bench.netmon_run import AlertReceiver, HarnessError, NetmonRun, write_config
from bench.peers import free_port, udp_drops
from collectors.snmp.codec import Message, PduType, Tag, VarBind, Version, encode_message

console = Console(width=max(Console().width, 110))

ENDPOINTS = [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(215)]  # tests/test_icmp.py
SOURCES = [f"127.0.9.{n}" for n in range(1, 51)]
KNOWN = SOURCES[:25]  # inventory targets; the rest are unknown to netmon
COMMUNITY = "storm-community"
V3_USER = "storm"
# Share of each kind of datagram in the storm.
MIX = {"valid": 0.4, "wrong-community": 0.2, "forged-v3": 0.2, "malformed": 0.2}
IF_INDEXES = 128  # random ifIndexes 1..128: more than MAX_TRAP_PORTS (96) per device
TRAP_DEVICE_ALERTS = frozenset({"InterfaceDown", "DeviceRebooted"})

SYS_UPTIME, TRAP_OID = (1, 3, 6, 1, 2, 1, 1, 3, 0), (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
LINK_DOWN, LINK_UP = (1, 3, 6, 1, 6, 3, 1, 1, 5, 3), (1, 3, 6, 1, 6, 3, 1, 1, 5, 4)
COLD_START = (1, 3, 6, 1, 6, 3, 1, 1, 5, 1)
IF_INDEX, IF_ADMIN, IF_OPER = ((1, 3, 6, 1, 2, 1, 2, 2, 1, i) for i in (1, 7, 8))


# --- the storm's datagrams ---------------------------------------------------------------------


def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes((tag, n)) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + body


def _int(value: int) -> bytes:
    return _tlv(Tag.INTEGER, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big"))


def v2c(rng: random.Random, community: str) -> bytes:
    """linkDown or linkUp on a random ifIndex, or now and then a coldStart."""
    uptime = VarBind(SYS_UPTIME, Tag.TIMETICKS, rng.randrange(1, 2**31))
    if rng.random() < 0.05:
        varbinds: tuple[VarBind, ...] = (
            uptime,
            VarBind(TRAP_OID, Tag.OBJECT_IDENTIFIER, COLD_START),
        )
    else:
        index, down = rng.randint(1, IF_INDEXES), rng.random() < 0.5
        varbinds = (
            uptime,
            VarBind(TRAP_OID, Tag.OBJECT_IDENTIFIER, LINK_DOWN if down else LINK_UP),
            VarBind((*IF_INDEX, index), Tag.INTEGER, index),
            VarBind((*IF_ADMIN, index), Tag.INTEGER, 1),
            VarBind((*IF_OPER, index), Tag.INTEGER, 2 if down else 1),
        )
    message = Message(
        Version.V2C, community.encode(), PduType.TRAP_V2, rng.randrange(2**31), 0, 0, varbinds
    )
    return encode_message(message)


def forged_v3(rng: random.Random) -> bytes:
    """The configured user with a random engine ID, authNoPriv, a garbage digest."""
    pdu = _tlv(
        PduType.TRAP_V2, _int(rng.randrange(2**31)) + _int(0) + _int(0) + _tlv(Tag.SEQUENCE, b"")
    )
    scoped = _tlv(Tag.SEQUENCE, _tlv(Tag.OCTET_STRING, b"") + _tlv(Tag.OCTET_STRING, b"") + pdu)
    engine_id = bytes.fromhex("80001f8880") + rng.randbytes(8)
    usm = _tlv(
        Tag.SEQUENCE,
        _tlv(Tag.OCTET_STRING, engine_id)
        + _int(rng.randrange(1, 100))
        + _int(rng.randrange(1, 10**6))
        + _tlv(Tag.OCTET_STRING, V3_USER.encode())
        + _tlv(Tag.OCTET_STRING, rng.randbytes(24))
        + _tlv(Tag.OCTET_STRING, b""),
    )
    global_data = _tlv(
        Tag.SEQUENCE,
        _int(rng.randrange(2**31)) + _int(65507) + _tlv(Tag.OCTET_STRING, b"\x01") + _int(3),
    )
    return _tlv(Tag.SEQUENCE, _int(3) + global_data + _tlv(Tag.OCTET_STRING, usm) + scoped)


def malformed(rng: random.Random) -> bytes:
    """Truncated BER, an OID of thousands of arcs or with a huge arc, or random bytes; with the
    right community, so that they reach the decoder."""
    kind = rng.randrange(4)
    if kind == 0:
        whole = v2c(rng, COMMUNITY)
        return whole[: rng.randrange(1, len(whole) - 1)]
    if kind in (1, 2):
        oid = (
            (1, 3, *(rng.randrange(1, 2**20) for _ in range(3000)))
            if kind == 1
            else (1, 3, 6, 1, 4, 1, 2**200, 1)
        )
        varbinds = (
            VarBind(SYS_UPTIME, Tag.TIMETICKS, 1),
            VarBind(TRAP_OID, Tag.OBJECT_IDENTIFIER, LINK_DOWN),
            VarBind(oid, Tag.INTEGER, 1),
        )
        message = Message(Version.V2C, COMMUNITY.encode(), PduType.TRAP_V2, 1, 0, 0, varbinds)
        return encode_message(message)
    return rng.randbytes(rng.randrange(1, 1400))


def storm_datagrams(rng: random.Random, count: int) -> list[tuple[int, str, bytes]]:
    """(source index, kind, datagram): the sources in turn, the kinds in MIX's shares."""
    kinds = list(MIX)
    weights = list(MIX.values())
    out = []
    for n in range(count):
        kind = rng.choices(kinds, weights)[0]
        if kind == "valid":
            data = v2c(rng, COMMUNITY)
        elif kind == "wrong-community":
            data = v2c(rng, "public")
        elif kind == "forged-v3":
            data = forged_v3(rng)
        else:
            data = malformed(rng)
        out.append((n % len(SOURCES), kind, data))
    return out


def send_storm(
    port: int, datagrams: list[tuple[int, str, bytes]], seconds: float
) -> dict[str, Any]:
    """Send evenly over `seconds`, each from its source's socket. Runs in a thread."""
    sockets = []
    try:
        for address in SOURCES:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sockets.append(sock)
            sock.bind((address, 0))
            sock.connect(("127.0.0.1", port))
            sock.setblocking(False)
        sent = failed = 0
        started = time.perf_counter()
        rate = len(datagrams) / seconds
        while sent + failed < len(datagrams):
            due = min(len(datagrams), int((time.perf_counter() - started) * rate) + 1)
            while sent + failed < due:
                source, _, data = datagrams[sent + failed]
                try:
                    sockets[source].send(data)
                    sent += 1
                except OSError:
                    failed += 1  # a full socket buffer: not offered
            time.sleep(0.001)
        return {"sent": sent, "send_failed": failed, "seconds": time.perf_counter() - started}
    finally:
        for sock in sockets:
            sock.close()


# --- netmon's figures ---------------------------------------------------------------------------


@dataclass
class Snapshot:
    """What /metrics and /proc say at one moment."""

    at: float
    series: int
    rss: int  # bytes
    lag_buckets: dict[float, float]  # le -> cumulative count, collector icmp
    lag_count: float
    skipped: float
    traps: dict[str, float]  # "family{labels}" -> value, the trap port's counters summed
    families: dict[str, int] = field(default_factory=dict)  # family -> its sample lines


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise HarnessError("no VmRSS in /proc/PID/status")


def parse(text: str, pid: int) -> Snapshot:
    series = 0
    families: Counter[str] = Counter()
    buckets: dict[float, float] = {}
    lag_count = skipped = 0.0
    traps: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series += 1
            families[family.name] += 1
            labels = sample.labels
            if (
                sample.name == "netmon_scheduler_lag_seconds_bucket"
                and labels["collector"] == "icmp"
            ):
                buckets[float(labels["le"])] = sample.value
            elif (
                sample.name == "netmon_scheduler_lag_seconds_count"
                and labels["collector"] == "icmp"
            ):
                lag_count = sample.value
            elif sample.name == "netmon_scheduler_skipped_runs_total":
                skipped += sample.value
            elif sample.name == "netmon_snmp_traps_received_total":
                traps[f"received{{trap={labels['trap']}}}"] += sample.value
            elif sample.name == "netmon_snmp_traps_dropped_total":
                traps[f"dropped{{reason={labels['reason']}}}"] += sample.value
            elif sample.name == "netmon_snmp_traps_unknown_source_total":
                traps["unknown_source"] += sample.value
            elif sample.name == "netmon_snmp_traps_malformed_total":
                traps["malformed"] += sample.value
            elif sample.name == "netmon_snmp_trap_errors_total":
                traps[f"errors{{reason={labels['reason']}}}"] += sample.value
    return Snapshot(
        time.time(),
        series,
        rss_bytes(pid),
        buckets,
        lag_count,
        skipped,
        dict(traps),
        dict(families),
    )


def quantile(q: float, before: Snapshot, after: Snapshot) -> float:
    """histogram_quantile over the delta of two cumulative histograms (seconds)."""
    bounds = sorted(after.lag_buckets)
    deltas = [after.lag_buckets[b] - before.lag_buckets.get(b, 0.0) for b in bounds]
    total = deltas[-1] if deltas else 0.0
    if total <= 0:
        return math.nan
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, cumulative in zip(bounds, deltas, strict=True):
        if cumulative >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bucket: its bound, as Prometheus does
            inside = cumulative - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, cumulative
    return lower


def share_over(limit: float, before: Snapshot, after: Snapshot) -> float:
    """Share of runs whose lag was above `limit` (a bucket bound)."""
    total = after.lag_count - before.lag_count
    within = after.lag_buckets.get(limit, 0.0) - before.lag_buckets.get(limit, 0.0)
    return (total - within) / total if total else math.nan


# --- the webhook and the service ----------------------------------------------------------------


def netmon_config(workdir: Path, webhook: str, http_port: int) -> Path:
    config = {
        "instance": "storm",
        "http": {"listen": f"127.0.0.1:{http_port}"},
        "alerting": {
            "enabled": True,
            "database": str(workdir / "alerts.sqlite"),
            "webhooks": [{"name": "storm", "url": webhook}],
        },
        "trap_receiver": {"listen": "127.0.0.1:0"},  # the default rate limit and burst
        "trap_credentials": ["storm-v2c", "storm-v3"],
        "credentials": {
            "storm-v2c": {"snmp_version": "2c", "community": COMMUNITY},
            "storm-v3": {
                "snmp_version": "3",
                "user": V3_USER,
                "auth_protocol": "SHA256",
                "auth_key": "storm-auth-key",
                "priv_protocol": "AES",
                "priv_key": "storm-priv-key",
            },
        },
        "targets": [
            *(
                {
                    "id": f"ep-{n:03d}",
                    "address": address,
                    "kind": "endpoint",
                    "probes": {"icmp": {}},
                }
                for n, address in enumerate(ENDPOINTS, 1)
            ),
            # Switches netmon does not poll: their traps are all it knows of them.
            *(
                {"id": f"sw-{n:02d}", "address": address, "kind": "switch", "probes": {}}
                for n, address in enumerate(KNOWN, 1)
            ),
        ],
    }
    return write_config(workdir, config)


class Netmon(NetmonRun):
    """`netmon run` for the storm: its trap port read from its log, snapshots of /metrics."""

    def __init__(self, config: Path, workdir: Path, http_port: int, *,
                 memory: Path | None = None, trace: bool = False) -> None:  # fmt: skip
        if memory is None:
            super().__init__(config, workdir, http_port)
        else:
            env = {**os.environ, storm_memory.ENV: str(memory),
                   "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}  # fmt: skip
            if trace:
                env[storm_memory.TRACE_ENV] = "1"
            command = [sys.executable, "-m", "bench.storm_memory"]
            super().__init__(config, workdir, http_port, command=command, env=env)
        self.trap_port = 0
        self._memory = memory
        self.memory_labels: list[str] = []

    async def memory_snapshot(self, label: str, timeout: float = 300.0) -> None:
        """With --memory: netmon writes its heap, smaps and arenas (bench/storm_memory.py)."""
        if self._memory is None:
            return
        done = self._memory / f"snap-{len(self.memory_labels):02d}.done"
        self.memory_labels.append(label)
        assert self.process is not None
        self.process.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + timeout
        while not done.exists():
            self.check_running()
            if time.monotonic() > deadline:
                raise HarnessError(f"no memory snapshot {label!r} in {timeout:g} s")
            await asyncio.sleep(0.2)

    async def snapshot(self, session: aiohttp.ClientSession) -> Snapshot:
        self.check_running()
        status, text = await self.get(session, "/metrics")
        if status != 200:
            raise HarnessError(f"netmon's /metrics answered {status}")
        return parse(text, self.pid)

    async def ready(self, session: aiohttp.ClientSession, timeout: float = 60.0) -> None:
        """The trap port known from the log, and every endpoint up."""
        deadline = time.monotonic() + timeout
        detail = "not started"
        while True:
            self.check_running()
            if not self.trap_port:
                for line in self.log.read_text(errors="replace").splitlines():
                    record = json.loads(line) if line.startswith("{") else {}
                    if record.get("logger") == "collectors.traps.receiver" and "port" in record:
                        self.trap_port = int(record["port"])
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                status, body = await self.get(session, "/api/v1/targets")
                if status == 200:
                    states = Counter(
                        t["state"] for t in json.loads(body)["targets"] if t["id"].startswith("ep-")
                    )
                    detail = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
                    if self.trap_port and states["up"] == len(ENDPOINTS):
                        return
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"endpoints not all up in {timeout:g} s ({detail}); "
                    f"trap port {self.trap_port or 'unknown'}; log {self.log}"
                )
            await asyncio.sleep(0.5)


# --- the campaign -------------------------------------------------------------------------------


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def _ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.1f} ms"


def trap_delta(before: Snapshot, after: Snapshot) -> dict[str, float]:
    keys = sorted(set(before.traps) | set(after.traps))
    return {k: after.traps.get(k, 0.0) - before.traps.get(k, 0.0) for k in keys}


async def campaign(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    async with AlertReceiver() as webhook:
        http_port = free_port()
        config = netmon_config(workdir, webhook.url, http_port)
        memory = workdir / "memory" if args.memory or args.tracemalloc else None
        if memory is not None:
            memory.mkdir()
        netmon = Netmon(config, workdir, http_port, memory=memory, trace=args.tracemalloc)
        async with netmon, aiohttp.ClientSession() as session:
            with console.status("netmon: starting, waiting for 215 endpoints up"):
                # Under tracemalloc netmon starts several times slower.
                await netmon.ready(session, timeout=600.0 if memory is not None else 60.0)
            with console.status(f"quiet baseline, {args.seconds:g} s"):
                await asyncio.sleep(5)  # the start's own catch-up out of the baseline
                quiet0 = await netmon.snapshot(session)
                await asyncio.sleep(args.seconds)
                quiet1 = await netmon.snapshot(session)
                await netmon.memory_snapshot("before storms")
            storm_start = time.time()
            rounds = []
            before = quiet1
            for n in range(1, args.rounds + 1):
                with console.status(f"storm {n}: encoding {args.traps} datagrams"):
                    datagrams = await asyncio.to_thread(storm_datagrams, rng, args.traps)
                    before = await netmon.snapshot(session)
                    drops = udp_drops(netmon.trap_port)
                with console.status(f"storm {n}: {args.traps} traps in {args.seconds:g} s"):
                    sending = await asyncio.to_thread(
                        send_storm, netmon.trap_port, datagrams, args.seconds
                    )
                    await asyncio.sleep(1.0)  # the receiver's queue drained
                    after = await netmon.snapshot(session)
                    await netmon.memory_snapshot(f"after storm {n}")
                rounds.append(
                    {
                        "round": n,
                        "offered": dict(Counter(kind for _, kind, _ in datagrams)),
                        **sending,
                        "kernel_drops": udp_drops(netmon.trap_port) - drops,
                        "lag_p99": quantile(0.99, before, after),
                        "lag_p50": quantile(0.5, before, after),
                        "lag_over_100ms": share_over(0.1, before, after),
                        "runs": after.lag_count - before.lag_count,
                        "skipped_runs": after.skipped - before.skipped,
                        "traps": trap_delta(before, after),
                        "series_before": before.series,
                        "series_after": after.series,
                        "series_added": {
                            f: c - before.families.get(f, 0)
                            for f, c in after.families.items()
                            if c != before.families.get(f, 0)
                        },
                        "rss_before": before.rss,
                        "rss_after": after.rss,
                    }
                )
                await asyncio.sleep(args.gap)
            with console.status(f"settling {args.settle:g} s"):
                await asyncio.sleep(args.settle)
                settled = await netmon.snapshot(session)
                await netmon.memory_snapshot("settled")
            netmon.check_running()
    storm_alerts = [alert for at, alert in webhook.alerts if at >= storm_start - 1]
    if memory is not None:
        with console.status("memory: diffing the snapshots"):
            breakdown = await asyncio.to_thread(storm_memory.report, memory, netmon.memory_labels)
    return {
        **({"memory": breakdown} if memory is not None else {}),
        "quiet": {
            "lag_p99": quantile(0.99, quiet0, quiet1),
            "lag_p50": quantile(0.5, quiet0, quiet1),
            "runs": quiet1.lag_count - quiet0.lag_count,
            "series": quiet1.series,
            "rss": quiet1.rss,
        },
        "rounds": rounds,
        "settled": {"series": settled.series, "rss": settled.rss, "skipped": settled.skipped},
        "alerts": classify(storm_alerts),
        "alerts_before_storm": len(webhook.alerts) - len(storm_alerts),
    }


def classify(alerts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Trap devices' InterfaceDown/DeviceRebooted apart from everything else (false)."""
    known = {f"sw-{n:02d}" for n in range(1, len(KNOWN) + 1)}
    trap: Counter[str] = Counter()
    interfaces: dict[str, set[str]] = {}
    false: Counter[str] = Counter()
    for alert in alerts:
        name, target = str(alert.get("alertname")), str(alert.get("target"))
        if target in known and name in TRAP_DEVICE_ALERTS:
            trap[f"{name} {alert.get('status')}"] += 1
            if name == "InterfaceDown":
                labels = alert.get("labels") or {}
                port = str(labels.get("ifname") or labels.get("ifindex") or "")
                interfaces.setdefault(target, set()).add(port)
        else:
            false[f"{name} {target} {alert.get('status')}"] += 1
    return {
        "trap_device_events": dict(trap),
        "max_interfaces_per_device": max((len(p) for p in interfaces.values()), default=0),
        "false": dict(false),
        "false_count": sum(false.values()),
    }


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    rounds = result["rounds"]
    first, last = rounds[0], rounds[-1]
    alerts = result["alerts"]
    lag_p99 = max(r["lag_p99"] for r in rounds)
    series_growth = last["series_after"] - last["series_before"] if len(rounds) > 1 else None
    settled_rss = result["settled"]["rss"]
    # Memory: what the last storm (the same senders again) left behind once settled, against
    # the RSS before it. The first storm's growth is the price of 50 new senders.
    rss_growth = settled_rss - last["rss_before"]
    rss_flat = rss_growth <= max(4 * 2**20, 0.05 * last["rss_before"])
    rows = [
        (
            "scheduler lag p99, icmp, during each storm",
            "< 100 ms",
            " / ".join(_ms(r["lag_p99"]) for r in rounds)
            + f" (quiet: {_ms(result['quiet']['lag_p99'])})",
            lag_p99 < 0.1,
        ),
        (
            "ICMP runs late > 100 ms",
            "-",
            " / ".join(f"{r['lag_over_100ms']:.2%} of {r['runs']:.0f}" for r in rounds),
            None,
        ),
        (
            "skipped runs",
            "0",
            " / ".join(f"{r['skipped_runs']:.0f}" for r in rounds),
            all(r["skipped_runs"] == 0 for r in rounds),
        ),
        (
            "false alerts (any but trap devices' own)",
            "0",
            str(alerts["false_count"]),
            alerts["false_count"] == 0,
        ),
        (
            "trap devices' alerts (InterfaceDown, DeviceRebooted)",
            "≤ 96 interfaces a device",
            f"{sum(alerts['trap_device_events'].values())} events, at most "
            f"{alerts['max_interfaces_per_device']} interfaces a device",
            alerts["max_interfaces_per_device"] <= 96,
        ),
        (
            "series: quiet → after each storm → settled",
            "bounded: the 2nd storm adds 0",
            " → ".join(
                [
                    str(result["quiet"]["series"]),
                    *(str(r["series_after"]) for r in rounds),
                    str(result["settled"]["series"]),
                ]
            ),
            series_growth == 0 if series_growth is not None else None,
        ),
        (
            "RSS: quiet → after each storm → settled",
            "flat: the last storm leaves ≤ 4 MiB",
            " → ".join(
                [
                    _mib(result["quiet"]["rss"]),
                    *(_mib(r["rss_after"]) for r in rounds),
                    _mib(settled_rss),
                ]
            ),
            rss_flat,
        ),
    ]
    table = Table(
        title=f"Trap storm: {args.traps:,} traps in {args.seconds:g} s from "
        f"{len(SOURCES)} sources, {args.rounds} round(s), 215 endpoints polled"
    )
    for column in ("figure", "goal", "measured", ""):
        table.add_column(column)
    for figure, goal, measured, met in rows:
        verdict = "" if met is None else ("met" if met else "[red]MISS[/]")
        table.add_row(figure, goal, measured, verdict)
    console.print(table)
    traps = Table(title="Trap port counters, per storm")
    traps.add_column("counter")
    for r in rounds:
        traps.add_column(f"storm {r['round']}", justify="right")
    for key in sorted({k for r in rounds for k in r["traps"]}):
        traps.add_row(key, *(f"{r['traps'].get(key, 0):,.0f}" for r in rounds))
    traps.add_row(
        "offered", *(", ".join(f"{k} {v}" for k, v in sorted(r["offered"].items())) for r in rounds)
    )
    traps.add_row(
        "sent / kernel drops", *(f"{r['sent']:,} / {r['kernel_drops']:,}" for r in rounds)
    )
    console.print(traps)
    if alerts["false"]:
        console.print(f"[red]false alerts:[/] {alerts['false']}")
    console.print(f"series added by storm 1: {first['series_added']}")
    result["verdicts"] = {figure: met for figure, _, _, met in rows}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--traps", type=int, default=20_000, help="datagrams per storm")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of a storm")
    parser.add_argument("--rounds", type=int, default=2, help="storms, one after the other")
    parser.add_argument("--gap", type=float, default=5.0, help="seconds between storms")
    parser.add_argument("--settle", type=float, default=60.0, help="seconds after the last")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--keep", action="store_true", help="keep the run's directory")
    parser.add_argument(
        "--memory", action="store_true",
        help="netmon's memory at each snapshot: anonymous, file-backed, pymalloc's arenas",
    )  # fmt: skip
    parser.add_argument(
        "--tracemalloc", action="store_true",
        help="netmon under tracemalloc: what its Python heap grew by, where (slows it: "
        "no lag or RSS figures)",
    )  # fmt: skip
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="netmon-storm-"))
    try:
        result = asyncio.run(campaign(args, workdir))
    except HarnessError as exc:
        console.print(f"[red]harness failed:[/] {exc}")
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report(result, args)
    if "memory" in result:
        storm_memory.print_report(result["memory"])
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"storm-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps({"args": vars(args), **result}, indent=2, default=str))
    console.print(f"written {path}" + (f"; run kept in {workdir}" if args.keep else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
