"""An ICMP echo responder with delay and loss, run inside a lab namespace.

These machines have no netem, so impairment is made here: the namespace's kernel echo replies are
turned off and this program answers instead, after `--delay` seconds and dropping a `--loss`
share of requests. Replies leave from the address that was pinged (IP_PKTINFO), as a real host's
would. With `--record FILE` every request's source, sequence and TOS byte is appended to FILE,
so tests can see how probes were marked.

Usage: icmp_responder.py --delay 0.02 --loss 0.3 [--record FILE] [--seed N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import socket
import struct
import time
from typing import TextIO

IP_PKTINFO = 8
ICMP_FILTER = 1
SOL_RAW = 255
SPIN = 0.002


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_reply(request_icmp: bytes) -> bytes:
    body = b"\x00\x00\x00\x00" + request_icmp[4:]
    return b"\x00\x00" + struct.pack("!H", checksum(body)) + request_icmp[4:]


async def serve(delay: float, loss: float, log: TextIO | None, seed: int | None) -> None:
    rng = random.Random(seed)
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.setblocking(False)
    # Only echo requests (type 8) wake us.
    sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", 0xFFFFFFFF & ~(1 << 8)))
    loop = asyncio.get_running_loop()

    def send(packet: bytes, source: bytes, destination: str) -> None:
        pktinfo = struct.pack("@i4s4s", 0, source, b"\x00" * 4)
        # The link may be down; a real host would not answer either.
        with contextlib.suppress(OSError):
            sock.sendmsg([packet], [(socket.IPPROTO_IP, IP_PKTINFO, pktinfo)], 0, (destination, 0))

    def send_at(due: float, packet: bytes, source: bytes, destination: str) -> None:
        while time.monotonic() < due:
            pass
        send(packet, source, destination)

    def on_readable() -> None:
        while True:
            try:
                data, _ = sock.recvfrom(65535)
            except BlockingIOError:
                return
            header_length = (data[0] & 0x0F) * 4
            tos = data[1]
            source_ip = socket.inet_ntoa(data[12:16])
            icmp = data[header_length:]
            if len(icmp) < 8 or icmp[0] != 8:
                continue
            sequence = struct.unpack("!H", icmp[6:8])[0]
            if log is not None:
                log.write(f"{source_ip} {sequence} {tos}\n")
            if rng.random() < loss:
                continue
            reply = echo_reply(icmp)
            if delay <= 0:
                send(reply, data[16:20], source_ip)
            else:
                # The loop's timers fire up to a millisecond late; wake early and spin the rest
                # so the delay the tests measure against is the delay we claim.
                due = time.monotonic() + delay
                loop.call_later(max(0.0, delay - SPIN), send_at, due, reply, data[16:20], source_ip)

    loop.add_reader(sock.fileno(), on_readable)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--loss", type=float, default=0.0)
    parser.add_argument("--record")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args()
    if args.record:
        with open(args.record, "a", buffering=1) as log:
            asyncio.run(serve(args.delay, args.loss, log, args.seed))
    else:
        asyncio.run(serve(args.delay, args.loss, None, args.seed))


if __name__ == "__main__":
    main()
