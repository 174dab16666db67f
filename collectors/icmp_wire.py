"""ICMP echo on the wire: the Linux constants Python does not export, the echo's header and
checksum, and the kernel timestamps that come back as ancillary data. Pure: no sockets here.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import struct

# Linux constants the socket module does not export.
SO_TIMESTAMPNS = 35
SO_TIMESTAMPING = 37
SOF_TIMESTAMPING_SOFTWARE = 1 << 4  # report software timestamps
SOF_TIMESTAMPING_TX_SCHED = 1 << 8  # stamp when the packet enters the interface's queue
SOL_RAW = 255
ICMP_FILTER = 1
ICMP6_FILTER = 1

ICMP_ECHO_REPLY = 0
ICMP_ECHO_REQUEST = 8
ICMP6_ECHO_REQUEST = 128
ICMP6_ECHO_REPLY = 129

TOKEN_LEN = 8
HEADER = struct.Struct("!BBHHH")
TIMESPEC = struct.Struct("@qq")
# Room for SO_TIMESTAMPNS and, when another socket of the host asked for receive timestamping,
# an SCM_TIMESTAMPING (three timespecs) beside it: truncation would drop ours.
ANCILLARY_SPACE = socket.CMSG_SPACE(TIMESPEC.size) + socket.CMSG_SPACE(3 * TIMESPEC.size)
# An error-queue message: the echo as it left (up to its token) and its timestamp and error.
ERRQUEUE_DATA = 256
ERRQUEUE_ANCILLARY = 512


def word_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    return sum(struct.unpack(f"!{len(data) // 2}H", data))


def checksum(word_sum: int) -> int:
    word_sum = (word_sum >> 16) + (word_sum & 0xFFFF)
    word_sum += word_sum >> 16
    return ~word_sum & 0xFFFF


def timestamp_ns(ancillary: list[tuple[int, int, bytes]], kind: int) -> int:
    """The first software timestamp of type `kind` (SO_TIMESTAMPNS or SO_TIMESTAMPING) in a
    message's ancillary data, in wall-clock nanoseconds; 0 when there is none."""
    for level, found, value in ancillary:
        if level == socket.SOL_SOCKET and found == kind and len(value) >= TIMESPEC.size:
            seconds, nanoseconds = TIMESPEC.unpack_from(value)
            if seconds or nanoseconds:
                return int(seconds) * 1_000_000_000 + int(nanoseconds)
    return 0


def echo_in(data: bytes, token: bytes) -> tuple[int, int] | None:
    """(identifier, sequence) of our echo inside `data` (a packet with every layer's headers
    before it, as the error queue returns it), found by its token; None if it is not there."""
    at = data.find(token)
    if at < HEADER.size:
        return None
    _type, _code, _sum, identifier, sequence = HEADER.unpack_from(data, at - HEADER.size)
    return identifier, sequence


def echo_request(
    family: int, identifier: int, sequence: int, payload: bytes, payload_sum: int
) -> bytes:
    """An echo request; `payload_sum` is `word_sum(payload)`, computed once per payload."""
    echo_type = ICMP_ECHO_REQUEST if family == socket.AF_INET else ICMP6_ECHO_REQUEST
    icmp_sum = 0
    if family == socket.AF_INET:
        # The kernel checksums ICMPv6 itself; ICMPv4 is ours (datagram sockets redo it).
        icmp_sum = checksum((echo_type << 8) + identifier + sequence + payload_sum)
    return HEADER.pack(echo_type, 0, icmp_sum, identifier, sequence) + payload


def canonical_address(address: str) -> str:
    """One spelling of an IP address (a reply's source against the address pinged)."""
    return str(ipaddress.ip_address(address.split("%", 1)[0]))


@functools.cache
def marking(family: int, dscp: int) -> list[tuple[int, int, bytes]]:
    """The ancillary data that marks an echo with a DSCP code point: packed once, not per echo
    (sendmsg only reads it)."""
    value = struct.pack("i", dscp << 2)
    if family == socket.AF_INET:
        return [(socket.IPPROTO_IP, socket.IP_TOS, value)]
    return [(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, value)]
