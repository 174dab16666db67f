"""An ICMP echo responder with delay, jitter and loss, run inside a lab network namespace.

These machines have no netem, so impairment is made here: the namespace's kernel echo replies are
turned off (`net.ipv4.icmp_echo_ignore_all=1`) and this program answers instead, after a delay
and dropping a share of requests. Replies leave from the address that was pinged (IP_PKTINFO), as
a real host's would, so one responder answers every address of its namespace.

What each address gets (`Impairment`):

- **loss**: each echo is lost with this chance, independently of the others (random loss).
- **delay**: seconds added before the reply.
- **jitter**: each reply is sent after `delay` plus a random amount drawn *uniformly* from
  -jitter..+jitter, so `--delay 0.02 --jitter 0.003` answers after 17 to 23 ms ("20 ± 3 ms").
  Uniform, not normal, because it is bounded: a lab link "20 ± 3 ms" never draws a 35 ms reply,
  so a latency threshold netmon crosses is never the luck of a tail, and its spread is exactly
  the one asked. netmon's jitter (RFC 3550's mean absolute difference of consecutive RTTs,
  the largest 5 % of differences left out) then reads 0.62 of `jitter` on average (1.9 ms for
  ± 3 ms; 2/3 untrimmed). A link cannot answer before it was
  asked (jitter on a link is queueing, which only adds): when `jitter` exceeds `delay` the window
  is moved up to start at 0, i.e. `--jitter 0.003` alone answers after 0 to 6 ms. Replies to one
  address never overtake each other, as in a router's FIFO queue: a reply waits for the one
  before it (at netmon's 1 echo/s with jitter far below a second this never binds; echoes sent
  closer together than 2 x jitter bunch up, as they would in a queue).
- **bursts**: a Gilbert–Elliott two-state loss model per address (`LossModel`). In the good
  state an echo is lost with the random `loss` chance; in the bad state (a burst) every echo is
  lost. `burst_every` is the mean time in seconds between bursts, from the end of one to the start
  of the next (0: no bursts); `burst_min`..`burst_max` the burst's length in *echoes* lost in a
  row, drawn uniformly for each burst. Mapped to the chain: bursts start as a Poisson process in
  time, so at each echo in the good state the chance of going bad is 1 - exp(-dt / burst_every),
  dt the time since the previous echo to that address (at 1 echo/s and burst_every=120 that is
  0.83 % per echo, whoever else pings it); the bad state lasts exactly the drawn number of echoes
  (not a geometric number, as in the textbook chain, whose bursts would range from 1 to dozens),
  and the echo after a burst is always in the good state, so two bursts never run together.
  A burst is counted in echoes, not in time: at 1 echo/s a burst of N echoes lasts about N s,
  and extra echoes (a prober's quick re-tries) use it up sooner. Time passes for the chain only
  between echoes, so the first echo after a long pause in the pinging is likely in a burst. The
  long-run share of echoes lost at 1 echo/s is about loss + (1 - loss) x L / (L + burst_every),
  L the mean burst length: 5.9 % for bursts of 5-10 every 120 s.

`--delay`, `--jitter`, `--loss`, `--burst-every`, `--burst-min` and `--burst-max` apply to every
address. With `--control`, stdin takes one JSON object per line,
`{"impairments": {"198.18.0.5": {"loss": 1.0, "delay": 0.0}, ...}}` (keys: loss, delay, jitter,
burst_every, burst_min, burst_max; absent ones take their defaults), which replaces the
per-address table (addresses not in it get the flags' impairment); each line is answered `ok` or
`error: ...` on stdout once it applies; an address whose impairment did not change keeps its
chain's state. With `--record FILE` every request's source, sequence and TOS byte is appended to
FILE, so tests can see how probes were marked. `--seed N` makes the random draws (losses,
bursts, jitter) the same on every run that sees the same echoes in the same order; whether a
burst starts also depends on the time between echoes, so bursts repeat only as closely as that.

Usage: python -m netmon_lab.responder [--delay 0.02] [--jitter 0.003] [--loss 0.3]
       [--burst-every 120 --burst-min 5 --burst-max 10] [--control] [--record FILE] [--seed N]
It prints `ready` once it listens. It must not import anything but the standard library: it
starts inside a namespace for every lab host, and quickly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

IP_PKTINFO = 8
ICMP_FILTER = 1
SOL_RAW = 255
SPIN = 0.002


KEYS = ("loss", "delay", "jitter", "burst_every", "burst_min", "burst_max")


@dataclass(frozen=True, slots=True)
class Impairment:
    loss: float = 0.0  # share of requests not answered (in the good state); 1.0: host down
    delay: float = 0.0  # seconds added before the reply
    jitter: float = 0.0  # each reply up to this much earlier or later (uniform), seconds
    burst_every: float = 0.0  # mean seconds from one burst's end to the next's start; 0: none
    burst_min: int = 5  # echoes lost in a row in a burst: at least
    burst_max: int = 10  # and at most

    def problem(self) -> str | None:
        """What is wrong with these values, naming the key; None when they are fine."""
        if not 0.0 <= self.loss <= 1.0:
            return "loss must be 0..1"
        for name in ("delay", "jitter", "burst_every"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                return f"{name} must be >= 0 seconds"
        if not 1 <= self.burst_min <= self.burst_max:
            return "burst_min and burst_max must be whole echoes, 1 <= burst_min <= burst_max"
        return None

    def to_json(self) -> dict[str, float | int]:
        """The control line's fields for this impairment (only what differs from no impairment,
        so a line for the 215 demo endpoints stays short)."""
        plain = Impairment()
        document: dict[str, float | int] = {"loss": self.loss, "delay": self.delay}
        if self.jitter != plain.jitter:
            document["jitter"] = self.jitter
        if self.burst_every != plain.burst_every:
            document.update(
                burst_every=self.burst_every, burst_min=self.burst_min, burst_max=self.burst_max
            )
        return document


class LossModel:
    """Which echoes to one address are lost: random loss and Gilbert–Elliott bursts.

    A pure decision, apart from the injected `rng`: `next_lost(now)` for each echo in arrival
    order, `now` in seconds on any monotonic clock. See the module's docstring for the chain.
    Without bursts it draws exactly what the responder drew before bursts existed (one number per
    echo when `loss` is set, none otherwise), so seeded runs of old lose the same echoes.
    """

    def __init__(self, impairment: Impairment, rng: random.Random) -> None:
        self.impairment = impairment
        self._rng = rng
        self._left = 0  # echoes still to lose in the burst under way; the bad state while > 0
        self._last: float | None = None  # when the previous echo came
        self._ended = False  # the previous echo was a burst's last

    @property
    def burst_left(self) -> int:
        """Echoes still to lose in the burst under way (0: the good state)."""
        return self._left

    def next_lost(self, now: float) -> bool:
        """Whether the echo arriving at `now` is lost."""
        impairment = self.impairment
        elapsed = 0.0 if self._last is None else max(0.0, now - self._last)
        self._last = now
        starts = -math.expm1(-elapsed / impairment.burst_every) if impairment.burst_every else 0.0
        if self._ended:  # a burst is followed by one echo in the good state at least
            self._ended = False
        elif self._left == 0 and starts > 0 and self._rng.random() < starts:
            self._left = self._rng.randint(impairment.burst_min, impairment.burst_max)
        if self._left > 0:
            self._left -= 1
            self._ended = self._left == 0
            return True
        return bool(impairment.loss) and self._rng.random() < impairment.loss


def reply_delay(impairment: Impairment, rng: random.Random) -> float:
    """Seconds before answering: `delay`, give or take up to `jitter` drawn uniformly, the window
    moved up to start at 0 when the jitter exceeds the delay."""
    if impairment.jitter <= 0:
        return impairment.delay
    centre = max(impairment.delay, impairment.jitter)
    return centre + rng.uniform(-impairment.jitter, impairment.jitter)


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = int(sum(struct.unpack(f"!{len(data) // 2}H", data)))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_reply(request_icmp: bytes) -> bytes:
    body = b"\x00\x00\x00\x00" + request_icmp[4:]
    return b"\x00\x00" + struct.pack("!H", checksum(body)) + request_icmp[4:]


def parse_impairment(where: str, fields: object) -> Impairment:
    """One address's fields of a control line -> its impairment; errors start with `where`."""
    if not isinstance(fields, dict):
        raise ValueError(f"{where}: expected an object with {', '.join(KEYS)}")
    unknown = sorted(set(fields) - set(KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown {', '.join(unknown)} (keys: {', '.join(KEYS)})")
    values: dict[str, Any] = {}
    for key, raw in fields.items():
        whole = key in ("burst_min", "burst_max")
        try:
            number = float(raw)  # numbers, and numbers written as strings
        except (TypeError, ValueError):
            number = math.nan
        if isinstance(raw, bool) or math.isnan(number) or (whole and not number.is_integer()):
            kind = "a whole number" if whole else "a number"
            raise ValueError(f"{where}: {key} must be {kind}, not {raw!r}")
        values[key] = int(number) if whole else number
    impairment = Impairment(**values)
    problem = impairment.problem()
    if problem is not None:
        raise ValueError(f"{where}: {problem}")
    return impairment


def parse_table(line: str) -> dict[bytes, Impairment]:
    """One control line -> the per-address table, keyed by packed IPv4 address."""
    document = json.loads(line)
    if not isinstance(document, dict) or not isinstance(document.get("impairments"), dict):
        raise ValueError('expected {"impairments": {ADDRESS: {"loss": R, "delay": S, ...}}}')
    return {
        socket.inet_aton(address): parse_impairment(address, fields)
        for address, fields in document["impairments"].items()
    }


SO_RCVBUFFORCE = 33  # Linux; Python 3.11 has no name for it
# A control line holds the whole table, ~45-65 bytes an address: asyncio's default line limit
# (64 KiB) ends at about 1,000-1,400 addresses, and a longer line kills the control task
# silently. 16 MiB leaves room for any lab this machine can build.
CONTROL_LINE_LIMIT = 16 * 1024 * 1024


class Responder:
    def __init__(self, default: Impairment, record: TextIO | None, seed: int | None) -> None:
        self.default = default
        self.table: dict[bytes, Impairment] = {}
        self._record = record
        self._rng = random.Random(seed)
        self._models: dict[bytes, LossModel] = {}  # by pinged address, for its impairment
        self._last_due: dict[bytes, float] = {}  # when its latest jittered reply leaves
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        self._sock.setblocking(False)
        # Only echo requests (type 8) wake us.
        self._sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", 0xFFFFFFFF & ~(1 << 8)))
        # A readiness check sends 200+ echoes in the same millisecond: room for the bursts
        # (root, inside the lab's namespace: the forced size is allowed).
        with contextlib.suppress(OSError):
            self._sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 * 1024 * 1024)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.add_reader(self._sock.fileno(), self._on_readable)

    def stop(self) -> None:
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()

    def _send(self, packet: bytes, source: bytes, destination: str) -> None:
        pktinfo = struct.pack("@i4s4s", 0, source, b"\x00" * 4)
        # The link may be down; a real host would not answer either.
        with contextlib.suppress(OSError):
            self._sock.sendmsg(
                [packet], [(socket.IPPROTO_IP, IP_PKTINFO, pktinfo)], 0, (destination, 0)
            )

    def _send_at(self, due: float, packet: bytes, source: bytes, destination: str) -> None:
        while time.monotonic() < due:
            pass
        self._send(packet, source, destination)

    def _on_readable(self) -> None:
        while True:
            try:
                data, _ = self._sock.recvfrom(65535)
            except BlockingIOError:
                return
            header_length = (data[0] & 0x0F) * 4
            tos = data[1]
            source_ip = socket.inet_ntoa(data[12:16])
            pinged = data[16:20]
            icmp = data[header_length:]
            if len(icmp) < 8 or icmp[0] != 8:
                continue
            if self._record is not None:
                sequence = struct.unpack("!H", icmp[6:8])[0]
                self._record.write(f"{source_ip} {sequence} {tos}\n")
            impairment = self.table.get(pinged, self.default)
            model = self._models.get(pinged)
            if model is None or model.impairment != impairment:
                model = self._models[pinged] = LossModel(impairment, self._rng)
            now = self._loop.time()  # time.monotonic(), as _send_at's
            if model.next_lost(now):
                continue
            reply = echo_reply(icmp)
            delay = reply_delay(impairment, self._rng)
            if delay <= 0:
                self._send(reply, pinged, source_ip)
                continue
            due = now + delay
            if impairment.jitter > 0:  # no overtaking: after the previous reply to that address
                due = max(due, self._last_due.get(pinged, 0.0) + 1e-6)
                self._last_due[pinged] = due
            # The loop's timers fire up to a millisecond late; wake early and spin the rest
            # so the delay the tests measure against is the delay we claim.
            self._loop.call_at(due - SPIN, self._send_at, due, reply, pinged, source_ip)


async def _control(responder: Responder, stop: asyncio.Event) -> None:
    """Apply the tables that arrive on stdin; stdin closing (the parent gone) stops us."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=CONTROL_LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        try:
            responder.table = parse_table(line.decode())
        except (ValueError, OSError) as exc:
            print(f"error: {exc}", flush=True)
        else:
            print("ok", flush=True)
    stop.set()


async def serve(
    default: Impairment, *, control: bool, record: TextIO | None, seed: int | None
) -> None:
    loop = asyncio.get_running_loop()
    responder = Responder(default, record, seed)
    responder.start(loop)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    controller = asyncio.create_task(_control(responder, stop)) if control else None
    print("ready", flush=True)
    try:
        await stop.wait()
    finally:
        if controller is not None:
            controller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await controller
        responder.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m netmon_lab.responder")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each reply")
    parser.add_argument(
        "--jitter", type=float, default=0.0, help="each reply up to this many seconds earlier or "
        "later (uniform; the window starts at 0 at the earliest)",
    )  # fmt: skip
    parser.add_argument("--loss", type=float, default=0.0, help="share of echoes lost at random")
    parser.add_argument(
        "--burst-every", type=float, default=0.0, metavar="SECONDS",
        help="mean time between bursts of lost echoes (Gilbert-Elliott); 0: no bursts",
    )  # fmt: skip
    parser.add_argument("--burst-min", type=int, default=5, help="echoes lost in a burst, at least")
    parser.add_argument("--burst-max", type=int, default=10, help="and at most")
    parser.add_argument("--control", action="store_true", help="per-address table on stdin")
    parser.add_argument("--record")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args()
    default = Impairment(
        loss=args.loss, delay=args.delay, jitter=args.jitter, burst_every=args.burst_every,
        burst_min=args.burst_min, burst_max=args.burst_max,
    )  # fmt: skip
    problem = default.problem()
    if problem is not None:
        parser.error(problem.replace("_", "-"))
    if args.record:
        with open(args.record, "a", buffering=1) as record:
            asyncio.run(serve(default, control=args.control, record=record, seed=args.seed))
    else:
        asyncio.run(serve(default, control=args.control, record=None, seed=args.seed))


if __name__ == "__main__":
    main()
