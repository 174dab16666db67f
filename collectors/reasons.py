"""Why a socket operation failed, as one stable reason word: the one errno table of collectors.

Every collector that opens connections (tcp, http, sip) turns an OSError into its reason here,
so "refused", "timeout" and "unreachable" mean the same on every probe and every dashboard.
Only one thing depends on the caller: whether the failure came while reaching the peer or in
a dialogue with it (`dialogue=True`, as SIP reads every socket error of its transaction).

- Reaching a peer (a TCP connect, an HTTP connection): a reset is the host answering that
  nothing listens there ("refused"), and any errno the table does not know still means the
  target was not reached ("unreachable").
- In a dialogue: a reset or a broken pipe is the peer breaking it off ("protocol"), and an
  errno the table does not know is just an "error".

This module does no I/O and must not import anything from the exporter, alerting or MQTT.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

# errno -> reason, whoever asks.
ERRNO_REASONS: dict[int, str] = {
    errno.ECONNREFUSED: "refused",
    errno.ETIMEDOUT: "timeout",
    errno.EHOSTUNREACH: "unreachable",
    errno.ENETUNREACH: "unreachable",
    errno.EHOSTDOWN: "unreachable",
    errno.ENETDOWN: "unreachable",
    errno.EADDRNOTAVAIL: "unreachable",
    errno.EACCES: "unreachable",  # an ICMP "administratively prohibited" from a firewall
    errno.EPERM: "unreachable",  # a local firewall rule that drops our packets
}
_BROKEN_OFF = (errno.ECONNRESET, errno.EPIPE)


@dataclass(frozen=True, slots=True)
class SocketFailure:
    reason: str  # refused, timeout, unreachable, protocol or error
    text: str  # short and lower case: "connection refused", "no route to host"


def socket_failure(exc: OSError, *, dialogue: bool = False) -> SocketFailure:
    """The reason and a short text for `exc` (see the module docstring for `dialogue`)."""
    if isinstance(exc, ConnectionRefusedError):
        return SocketFailure("refused", "connection refused")
    reason = ERRNO_REASONS.get(exc.errno or 0)
    if reason == "refused":
        return SocketFailure(reason, "connection refused")
    if reason == "timeout":
        return SocketFailure(reason, "connection timed out")
    if reason is not None:
        return SocketFailure(reason, (exc.strerror or reason).lower())
    if isinstance(exc, ConnectionResetError):
        return SocketFailure("protocol" if dialogue else "refused", "connection reset")
    if isinstance(exc, BrokenPipeError) or exc.errno in _BROKEN_OFF:
        return SocketFailure("protocol" if dialogue else "refused", _text(exc))
    return SocketFailure("error" if dialogue else "unreachable", _text(exc))


def _text(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()
