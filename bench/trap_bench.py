"""Trap throughput: netmon's trap receiver against net-snmp's snmptrapd, same traps, same run.

One sender (this process, from 127.0.0.1) replays pre-encoded notifications, a 48-port switch's
linkDown/linkUp pairs, at several rates for `--seconds` each, to:
- netmon, the real service (`netmon run`) with `trap_receiver` on loopback (its rate limit
  raised far above the load, so the receiver is measured, not the limiter), the sender in the
  inventory and the community accepted through `trap_credentials`; received = the growth of
  `netmon_snmp_traps_received_total` on /metrics;
- snmptrapd (`-f -n -C -c CONF`, `authCommunity log`, no NOTIFICATION-LOG-MIB table), logging
  one line per notification (source and varbinds, `format2`) to a file; received = new lines.
CPU is each receiver's own utime + stime from /proc/PID/stat over the run and its drain;
kernel drops are its socket's `drops` in /proc/net/udp. Then one SNMPv3 authPriv run
(SHA-256/AES, datagrams made by net-snmp's snmptrap) at a modest rate, for both.

Run with `make bench`. Figures depend on the machine; compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from bench import peers
from collectors.snmp.codec import Message, PduType, Tag, VarBind, Version, encode_message

# Wide enough for the table when the output goes to a file or a pipe (80 columns then).
console = Console(width=max(Console().width, 110))
COMMUNITY = "bench-community"
V3 = {"user": "bench", "auth": "SHA-256", "auth_key": "bench-auth-key", "priv": "AES",
      "priv_key": "bench-priv-key", "engine_id": "80001f8880b3c4e5f60718"}  # fmt: skip
PORTS = 48
LINK_DOWN, LINK_UP = (1, 3, 6, 1, 6, 3, 1, 1, 5, 3), (1, 3, 6, 1, 6, 3, 1, 1, 5, 4)
SYS_UPTIME, TRAP_OID = (1, 3, 6, 1, 2, 1, 1, 3, 0), (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
IDLE_SECONDS = 3.0
IF_INDEX, IF_ADMIN, IF_OPER = ((1, 3, 6, 1, 2, 1, 2, 2, 1, i) for i in (1, 7, 8))


def v2c_traps() -> list[bytes]:
    """linkDown then linkUp for each of PORTS interfaces, as a switch sends them (RFC 2863)."""
    datagrams = []
    for n in range(2 * PORTS):
        index, down = 1 + n // 2, n % 2 == 0
        status = 2 if down else 1
        varbinds = (
            VarBind(SYS_UPTIME, Tag.TIMETICKS, 1_000_000 + n),
            VarBind(TRAP_OID, Tag.OBJECT_IDENTIFIER, LINK_DOWN if down else LINK_UP),
            VarBind((*IF_INDEX, index), Tag.INTEGER, index),
            VarBind((*IF_ADMIN, index), Tag.INTEGER, 1),
            VarBind((*IF_OPER, index), Tag.INTEGER, status),
        )
        message = Message(Version.V2C, COMMUNITY.encode(), PduType.TRAP_V2, 1000 + n, 0, 0,
                          varbinds)  # fmt: skip
        datagrams.append(encode_message(message))
    return datagrams


def v3_traps(workdir: Path, count: int) -> list[bytes]:
    """authPriv linkDown/linkUp traps as net-snmp's snmptrap encodes them, caught on a socket
    (USM encryption with a fresh salt each; replayed within the 150 s time window)."""
    env = {**os.environ, "MIBS": "", "SNMP_PERSISTENT_DIR": str(workdir / "snmptrap-persist")}
    datagrams = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        port = sock.getsockname()[1]
        for n in range(count):
            index, down = 1 + n // 2, n % 2 == 0
            subprocess.run(
                ["snmptrap", "-v3", "-e", f"0x{V3['engine_id']}", "-u", V3["user"],
                 "-l", "authPriv", "-a", V3["auth"], "-A", V3["auth_key"], "-x", V3["priv"],
                 "-X", V3["priv_key"], f"127.0.0.1:{port}", "",
                 ".".join(map(str, LINK_DOWN if down else LINK_UP)),
                 ".".join(map(str, (*IF_INDEX, index))), "i", str(index),
                 ".".join(map(str, (*IF_OPER, index))), "i", "2" if down else "1"],
                env=env, check=True, capture_output=True,
            )  # fmt: skip
            datagrams.append(sock.recvfrom(65535)[0])
    return datagrams


def send(
    port: int, datagrams: list[bytes], rate: float | None, seconds: float
) -> tuple[int, float]:
    """Send from 127.0.0.1 at `rate` per second (None: as fast as this loop goes).

    Returns (datagrams sent, seconds spent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.connect(("127.0.0.1", port))
        count = len(datagrams)
        sent = 0
        started = time.perf_counter()
        end = started + seconds
        while True:
            now = time.perf_counter()
            if now >= end:
                break
            due = sent + 64 if rate is None else int((now - started) * rate)
            while sent < due:
                try:  # noqa: SIM105 - suppress() costs a context manager per datagram
                    sock.send(datagrams[sent % count])
                except (BlockingIOError, ConnectionRefusedError):
                    pass  # a full socket buffer or a late ICMP error: counted as sent, lost
                sent += 1
            if rate is not None:
                time.sleep(0.0005)
        return sent, time.perf_counter() - started


@dataclass
class Receiver:
    name: str
    pid: int
    port: int
    count: Callable[[], int]
    refused: Callable[[], int]  # rate-limited, malformed or refused: must stay 0
    stop: Callable[[], None]


@dataclass
class LoadResult:
    receiver: str
    load: str
    offered_per_s: float
    sent: int
    received: int
    kernel_drops: int
    refused: int
    seconds: float
    cpu_seconds: float

    @property
    def lost(self) -> int:
        return self.sent - self.received

    @property
    def handled_per_s(self) -> float:
        return self.received / self.seconds if self.seconds else float("nan")

    @property
    def cpu_per_1000(self) -> float:
        return 1000 * self.cpu_seconds / self.received if self.received else float("nan")

    @property
    def per_cpu_second(self) -> float:
        return self.received / self.cpu_seconds if self.cpu_seconds else float("nan")


def run_load(receiver: Receiver, load: str, datagrams: list[bytes], rate: float | None,
             seconds: float) -> LoadResult:  # fmt: skip
    count, refused = receiver.count(), receiver.refused()
    drops = peers.udp_drops(receiver.port)
    cpu = peers.proc_cpu(receiver.pid)
    started = time.monotonic()
    sent, sending = send(receiver.port, datagrams, rate, seconds)
    # Drained when the count has not moved for a second (a queue may still be emptying).
    last, last_change = receiver.count(), time.monotonic()
    while time.monotonic() - last_change < 1.0 and time.monotonic() - started < seconds + 60:
        time.sleep(0.2)
        now_count = receiver.count()
        if now_count != last:
            last, last_change = now_count, time.monotonic()
    cpu = peers.proc_cpu(receiver.pid) - cpu
    return LoadResult(
        receiver=receiver.name,
        load=load,
        offered_per_s=sent / sending,
        sent=sent,
        received=last - count,
        kernel_drops=peers.udp_drops(receiver.port) - drops,
        refused=receiver.refused() - refused,
        seconds=max(sending, last_change - started),
        cpu_seconds=cpu,
    )


def _metrics(url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:  # noqa: S310
        text = response.read().decode()
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith("netmon_snmp_traps"):
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def start_netmon(workdir: Path) -> Receiver:
    config = {
        "instance": "trapbench",
        "http": {"listen": "127.0.0.1:0"},
        "alerting": {"database": str(workdir / "alerts.sqlite")},
        "trap_receiver": {"listen": "127.0.0.1:0", "rate_limit": 10_000_000,
                          "burst": 10_000_000},
        "trap_credentials": ["bench-v2c", "bench-v3"],
        "credentials": {
            "bench-v2c": {"snmp_version": "2c", "community": COMMUNITY},
            "bench-v3": {"snmp_version": "3", "user": V3["user"], "auth_protocol": "SHA256",
                         "auth_key": V3["auth_key"], "priv_protocol": "AES",
                         "priv_key": V3["priv_key"]},
        },
        # The sender is a switch netmon does not poll: its traps are all it costs.
        "targets": [{"id": "sw-bench", "address": "127.0.0.1", "kind": "switch",
                     "probes": {}, "trap_engine_ids": [V3["engine_id"]]}],
    }  # fmt: skip
    path = workdir / "netmon.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    log = workdir / "netmon.log"
    netmon = Path(sys.executable).with_name("netmon")
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(netmon), "run", "--config", str(path), "--log-format", "json"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=out,
        )  # fmt: skip
    url, port = None, None
    deadline = time.monotonic() + 30
    while url is None or port is None:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"netmon did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)
        for line in log.read_text().splitlines():
            record = json.loads(line) if line.startswith("{") else {}
            if record.get("msg") == "netmon running":
                url = record["url"]
            elif record.get("logger") == "collectors.traps.receiver" and "port" in record:
                port = int(record["port"])

    def count() -> int:
        return int(_metrics(url).get("netmon_snmp_traps_received_total", 0))

    def refused() -> int:
        totals = _metrics(url)
        return int(sum(v for k, v in totals.items() if k != "netmon_snmp_traps_received_total"))

    def stop() -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    return Receiver("netmon", process.pid, port, count, refused, stop)


def start_snmptrapd(workdir: Path) -> Receiver:
    log = workdir / "snmptrapd.log"
    config = (
        f"authCommunity log {COMMUNITY}\n"
        f"createUser -e 0x{V3['engine_id']} {V3['user']} {V3['auth']} {V3['auth_key']} "
        f"{V3['priv']} {V3['priv_key']}\n"
        f"authUser log {V3['user']} priv\n"
        "doNotRetainNotificationLogs yes\n"
        "format2 %B %v\\n\n"
    )
    peer, port = peers.snmptrapd(workdir, config, log)
    offset, lines = 0, 0

    def count() -> int:
        nonlocal offset, lines
        with log.open("rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
        complete = chunk.rfind(b"\n") + 1
        lines += chunk[:complete].count(b"\nUDP: ") + chunk[:complete].startswith(b"UDP: ")
        offset += complete
        return lines

    return Receiver("snmptrapd", peer.pid, port, count, lambda: 0, peer.stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--seconds", type=float, default=10.0, help="sending time per rate")
    parser.add_argument("--rates", default="1000,5000,max", help="traps per second, or max")
    parser.add_argument("--v3-rate", type=float, default=200.0, help="0 skips the v3 run")
    parser.add_argument(
        "--keep", action="store_true", help="keep the working directory (configs, peer logs)"
    )
    args = parser.parse_args()
    rates = [None if r == "max" else float(r) for r in args.rates.split(",")]

    results: list[LoadResult] = []
    idle: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="netmon-trap-bench-") as tmp, ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="netmon-trap-bench-")) if args.keep else Path(tmp)
        receivers: list[Receiver] = []
        for start in (start_netmon, start_snmptrapd):
            with console.status(f"{start.__name__.removeprefix('start_')}: starting"):
                receiver = start(workdir)
            stack.callback(receiver.stop)
            receivers.append(receiver)
        with console.status("idle CPU of each receiver"):
            before = {r.name: peers.proc_cpu(r.pid) for r in receivers}
            time.sleep(IDLE_SECONDS)
            idle = {r.name: (peers.proc_cpu(r.pid) - before[r.name]) / IDLE_SECONDS
                    for r in receivers}  # fmt: skip
        loads: list[tuple[str, float | None]] = [
            ("v2c max" if rate is None else f"v2c {rate:g}/s", rate) for rate in rates
        ]
        if args.v3_rate:
            loads.append((f"v3 authPriv {args.v3_rate:g}/s", args.v3_rate))
        # Each load goes to one receiver and then the other, so that what else this machine
        # is doing weighs on both alike.
        v2c = v2c_traps()
        for load, rate in loads:
            for receiver in receivers:
                datagrams = v2c
                if load.startswith("v3"):
                    # Made just before use: their engine time must be current on arrival.
                    with console.status("encoding v3 traps with snmptrap"):
                        datagrams = v3_traps(workdir, 2 * 12)
                with console.status(f"{receiver.name}: {load} for {args.seconds:g} s"):
                    results.append(run_load(receiver, load, datagrams, rate, args.seconds))

    table = Table(title=f"SNMP traps from one sender, {args.seconds:g} s per load")
    for column in ("load", "receiver", "offered/s", "handled/s", "lost", "CPU s/1k traps",
                   "traps/CPU-s", "netmon / snmptrapd"):  # fmt: skip
        table.add_column(column, justify="right")
    peer = {r.load: r for r in results if r.receiver == "snmptrapd"}
    rows = []
    for result in results:
        other = peer.get(result.load)
        ratio = (
            result.cpu_per_1000 / other.cpu_per_1000
            if result.receiver == "netmon" and other is not None and other.cpu_per_1000
            else None
        )
        table.add_row(
            result.load, result.receiver, f"{result.offered_per_s:,.0f}",
            f"{result.handled_per_s:,.0f}",
            f"{result.lost / result.sent:.1%}" if result.sent else "-",
            f"{result.cpu_per_1000:.4f}", f"{result.per_cpu_second:,.0f}",
            f"{ratio:.2f}x" if ratio is not None else "",
        )  # fmt: skip
        rows.append(
            {
                **asdict(result),
                "lost": result.lost,
                "cpu_per_1000": result.cpu_per_1000,
                "handled_per_s": result.handled_per_s,
                "netmon_vs_snmptrapd": ratio,
            }
        )
        if result.refused:
            console.print(f"[red]{result.receiver} {result.load}: {result.refused} refused[/]")
    console.print(table)
    in_kernel = sum(r.kernel_drops for r in results)
    console.print(
        f"lost: {sum(r.lost for r in results)} in all, of which {in_kernel} dropped by the kernel "
        "(receive buffer full); CPU is the receiver's own, over the load and its drain; "
        f"idle, netmon uses {idle['netmon']:.4f} CPU-s/s, snmptrapd {idle['snmptrapd']:.4f}"
    )
    if args.keep:
        console.print(f"configs and logs kept in {workdir}")
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"traps-{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(
        json.dumps({"loads": rows, "idle_cpu_per_second": idle}, indent=2)
    )


if __name__ == "__main__":
    main()
