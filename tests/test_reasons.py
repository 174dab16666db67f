"""The one errno -> reason table of the collectors, for a peer being reached and in a dialogue."""

from __future__ import annotations

import errno

import pytest

from collectors.reasons import SocketFailure, socket_failure


@pytest.mark.parametrize(
    ("error", "reaching", "dialogue"),
    [
        (
            ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
            SocketFailure("refused", "connection refused"),
            SocketFailure("refused", "connection refused"),
        ),
        (
            OSError(errno.ETIMEDOUT, "Connection timed out"),
            SocketFailure("timeout", "connection timed out"),
            SocketFailure("timeout", "connection timed out"),
        ),
        (
            OSError(errno.EHOSTUNREACH, "No route to host"),
            SocketFailure("unreachable", "no route to host"),
            SocketFailure("unreachable", "no route to host"),
        ),
        (
            OSError(errno.ENETUNREACH, "Network is unreachable"),
            SocketFailure("unreachable", "network is unreachable"),
            SocketFailure("unreachable", "network is unreachable"),
        ),
        (
            OSError(errno.EHOSTDOWN, "Host is down"),
            SocketFailure("unreachable", "host is down"),
            SocketFailure("unreachable", "host is down"),
        ),
        (
            OSError(errno.ENETDOWN, "Network is down"),
            SocketFailure("unreachable", "network is down"),
            SocketFailure("unreachable", "network is down"),
        ),
        (
            OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"),
            SocketFailure("unreachable", "cannot assign requested address"),
            SocketFailure("unreachable", "cannot assign requested address"),
        ),
        (
            PermissionError(errno.EACCES, "Permission denied"),
            SocketFailure("unreachable", "permission denied"),
            SocketFailure("unreachable", "permission denied"),
        ),
        (
            PermissionError(errno.EPERM, "Operation not permitted"),
            SocketFailure("unreachable", "operation not permitted"),
            SocketFailure("unreachable", "operation not permitted"),
        ),
        (
            ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
            SocketFailure("refused", "connection reset"),
            SocketFailure("protocol", "connection reset"),
        ),
        (
            BrokenPipeError(errno.EPIPE, "Broken pipe"),
            SocketFailure("refused", "broken pipe"),
            SocketFailure("protocol", "broken pipe"),
        ),
        (
            OSError(errno.EMSGSIZE, "Message too long"),
            SocketFailure("unreachable", "message too long"),
            SocketFailure("error", "message too long"),
        ),
        (
            OSError("no errno at all"),
            SocketFailure("unreachable", "oserror"),
            SocketFailure("error", "oserror"),
        ),
    ],
)
def test_socket_errors_become_reasons(
    error: OSError, reaching: SocketFailure, dialogue: SocketFailure
) -> None:
    assert socket_failure(error) == reaching
    assert socket_failure(error, dialogue=True) == dialogue
