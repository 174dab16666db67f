"""An ICMP echo responder with delay and loss, run inside a lab network namespace.

These machines have no netem, so impairment is made here: the namespace's kernel echo replies are
turned off (`net.ipv4.icmp_echo_ignore_all=1`) and this program answers instead, after a delay
and dropping a share of requests. Replies leave from the address that was pinged (IP_PKTINFO), as
a real host's would, so one responder answers every address of its namespace.

`--delay` and `--loss` apply to every address. With `--control`, stdin takes one JSON object per
line, `{"impairments": {"198.18.0.5": {"loss": 1.0, "delay": 0.0}, ...}}`, which replaces the
per-address table (addresses not in it get `--delay`/`--loss`); each line is answered `ok` or
`error: ...` on stdout once it applies. With `--record FILE` every request's source, sequence and
TOS byte is appended to FILE, so tests can see how probes were marked.

Usage: python -m netmon_lab.responder [--delay 0.02] [--loss 0.3] [--control] [--record FILE]
       [--seed N]
It prints `ready` once it listens. It must not import anything but the standard library: it
starts inside a namespace for every lab host, and quickly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass
from typing import TextIO

IP_PKTINFO = 8
ICMP_FILTER = 1
SOL_RAW = 255
SPIN = 0.002


@dataclass(frozen=True, slots=True)
class Impairment:
    loss: float = 0.0  # share of requests not answered; 1.0 is a host that is down
    delay: float = 0.0  # seconds added before the reply


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


def parse_table(line: str) -> dict[bytes, Impairment]:
    """One control line -> the per-address table, keyed by packed IPv4 address."""
    document = json.loads(line)
    if not isinstance(document, dict) or not isinstance(document.get("impairments"), dict):
        raise ValueError('expected {"impairments": {ADDRESS: {"loss": R, "delay": S}}}')
    table: dict[bytes, Impairment] = {}
    for address, fields in document["impairments"].items():
        if not isinstance(fields, dict) or set(fields) - {"loss", "delay"}:
            raise ValueError(f"{address}: expected loss and delay only")
        loss, delay = float(fields.get("loss", 0.0)), float(fields.get("delay", 0.0))
        if not 0.0 <= loss <= 1.0 or delay < 0.0:
            raise ValueError(f"{address}: loss must be 0..1 and delay >= 0")
        table[socket.inet_aton(address)] = Impairment(loss=loss, delay=delay)
    return table


SO_RCVBUFFORCE = 33  # Linux; Python 3.11 has no name for it


class Responder:
    def __init__(self, default: Impairment, record: TextIO | None, seed: int | None) -> None:
        self.default = default
        self.table: dict[bytes, Impairment] = {}
        self._record = record
        self._rng = random.Random(seed)
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
            if impairment.loss and self._rng.random() < impairment.loss:
                continue
            reply = echo_reply(icmp)
            delay = impairment.delay
            if delay <= 0:
                self._send(reply, pinged, source_ip)
            else:
                # The loop's timers fire up to a millisecond late; wake early and spin the rest
                # so the delay the tests measure against is the delay we claim.
                due = time.monotonic() + delay
                self._loop.call_later(
                    max(0.0, delay - SPIN), self._send_at, due, reply, pinged, source_ip
                )


async def _control(responder: Responder, stop: asyncio.Event) -> None:
    """Apply the tables that arrive on stdin; stdin closing (the parent gone) stops us."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
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
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--loss", type=float, default=0.0)
    parser.add_argument("--control", action="store_true", help="per-address table on stdin")
    parser.add_argument("--record")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args()
    default = Impairment(loss=args.loss, delay=args.delay)
    if args.record:
        with open(args.record, "a", buffering=1) as record:
            asyncio.run(serve(default, control=args.control, record=record, seed=args.seed))
    else:
        asyncio.run(serve(default, control=args.control, record=None, seed=args.seed))


if __name__ == "__main__":
    main()
