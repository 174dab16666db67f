"""Real SIP peers owned by tests, a scripted UAS of our own, and their fixtures.

`Kamailio` is a SIP proxy with a few lines of config that answer OPTIONS statelessly over UDP
and TCP on one free loopback port: 200 OK, or the code given for a request-URI user
(`replies={"busy": (503, "Service Unavailable")}`). `Baresip` is a real SIP user agent (the
closest thing to a room system here) with one account, `user`, answering OPTIONS addressed to
it with 200 and to anyone else with 404. `sipsak_options()` asks the same question with sipsak,
an independent client, to cross-check what netmon reports.

`ScriptedUas` is a UDP or TCP server on loopback that answers each request with what a test
scripts (raw bytes, or responses built from the request, with delays), and records what it got.
`SilentUdp` is a bound UDP socket that never answers and counts what it received.

From a test module: `pytest_plugins = ["tests.sip_peers"]`, then the fixtures `kamailio`,
`kamailio_factory(replies=...)`, `baresip` (user `alice`), `scripted_uas(script, transport=)`
and `silent_udp`; every peer is stopped (by PID, children included) after the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.helpers import wait_until
from tests.peers import terminate

KAMAILIO_MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")
BARESIP_MODULES = Path("/usr/lib/baresip/modules")


def program(name: str) -> str:
    """A peer program's path; a missing one fails the test loudly (make test installs it)."""
    # kamailio lives in /usr/sbin, which a non-root PATH may lack.
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        pytest.fail(f"{name} is not installed: run `make test`, which installs it", pytrace=False)
    return path


def free_udp_tcp_port() -> int:
    """A loopback port free for both UDP and TCP (SIP listens on both with one number)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket() as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise AssertionError("no port free for both UDP and TCP")


def options_request(port: int, user: str = "ready", *, local_port: int = 9) -> bytes:
    """A minimal OPTIONS of the tests' own, to see whether a peer answers yet."""
    branch = f"z9hG4bK{time.monotonic_ns()}"
    return (
        f"OPTIONS sip:{user}@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:test@127.0.0.1>;tag=ready\r\n"
        f"To: <sip:{user}@127.0.0.1:{port}>\r\n"
        f"Call-ID: ready-{branch}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def answers_udp(port: int, user: str = "ready") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        sock.connect(("127.0.0.1", port))
        try:
            sock.send(options_request(port, user, local_port=sock.getsockname()[1]))
            return sock.recv(65536).startswith(b"SIP/2.0 ")
        except OSError:
            return False


def answers_tcp(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


def _children(pid: int) -> list[int]:
    """PIDs whose parent is `pid` (kamailio forks its workers)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces or parentheses: fields start after the last ')'.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry))
    return found


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


class _SipPeer:
    """A SIP peer program run as a child process, its output in a log file."""

    process: subprocess.Popen[bytes]
    log: Any
    log_path: Path
    port: int

    def _start(self, argv: list[str], workdir: Path, name: str) -> None:
        self.log_path = workdir / f"{name}.log"
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _alive(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(
                f"{self.process.args!r} exited with {self.process.returncode}:\n{self.output()}"
            )
        return True

    def stop(self) -> None:
        """SIGTERM the peer by PID; workers it forked that outlive it are stopped by PID too."""
        workers = _children(self.process.pid)
        terminate(self.process)
        with contextlib.suppress(AssertionError):
            wait_until(lambda: all(_gone(pid) for pid in workers), timeout=5, what="workers")
        for pid in workers:
            if not _gone(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.log.close()
        leftover = [pid for pid in workers if not _gone(pid)]
        assert not leftover, f"{type(self).__name__} workers still running: {leftover}"


class Kamailio(_SipPeer):
    """Kamailio answering OPTIONS statelessly on 127.0.0.1:port, UDP and TCP.

    `replies` maps a request-URI user to the (code, reason) it gets; everyone else gets 200 OK,
    and any other method 405.
    """

    def __init__(self, workdir: Path, *, replies: dict[str, tuple[int, str]] | None = None) -> None:
        binary = program("kamailio")
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_udp_tcp_port()
        rules = "".join(
            f'        if ($rU == "{user}") {{ sl_send_reply("{code}", "{reason}"); exit; }}\n'
            for user, (code, reason) in (replies or {}).items()
        )
        config = workdir / "kamailio.cfg"
        config.write_text(
            "#!KAMAILIO\n"
            "debug=2\nlog_stderror=yes\nchildren=2\ntcp_children=1\nauto_aliases=no\n"
            f"listen=udp:127.0.0.1:{self.port}\nlisten=tcp:127.0.0.1:{self.port}\n"
            f'mpath="{KAMAILIO_MODULES}/"\n'
            'loadmodule "sl.so"\nloadmodule "pv.so"\n'
            "request_route {\n"
            '    if ($rm == "OPTIONS") {\n'
            f"{rules}"
            '        sl_send_reply("200", "OK");\n'
            "        exit;\n"
            "    }\n"
            '    sl_send_reply("405", "Method Not Allowed");\n'
            "}\n"
        )
        runtime = workdir / "kamailio-run"
        runtime.mkdir(exist_ok=True)
        self._start(
            [binary, "-f", str(config), "-DD", "-E", "-Y", str(runtime), "-m", "16", "-M", "4"],
            workdir,
            "kamailio",
        )
        try:
            wait_until(
                lambda: self._alive() and answers_udp(self.port) and answers_tcp(self.port),
                timeout=10,
                what="kamailio to answer OPTIONS",
            )
        except BaseException:
            self.stop()
            raise


class Baresip(_SipPeer):
    """baresip with one account, `user`, listening for SIP on 127.0.0.1:port (UDP and TCP).

    `accounts` replaces the accounts file's lines (`registering(...)` builds one that registers
    to a registrar); `user` must be one of them, the one the readiness OPTIONS is addressed to.
    """

    def __init__(
        self, workdir: Path, *, user: str = "alice", accounts: Sequence[str] | None = None
    ) -> None:
        binary = program("baresip")
        self.user = user
        confdir = workdir / "baresip"
        confdir.mkdir(parents=True, exist_ok=True)
        lines = accounts if accounts is not None else [f"<sip:{user}@127.0.0.1>;regint=0"]
        (confdir / "accounts").write_text("".join(f"{line}\n" for line in lines))
        # baresip also listens on port + 1 for TLS; a port taken by then means another try.
        for _attempt in range(3):
            self.port = free_udp_tcp_port()
            (confdir / "config").write_text(
                f"sip_listen\t127.0.0.1:{self.port}\n"
                f"module_path\t{BARESIP_MODULES}\n"
                "module\taccount.so\n"  # reads the accounts file; without it every user gets 404
            )
            self._start([binary, "-f", str(confdir), "-n", "127.0.0.1"], workdir, "baresip")
            try:
                wait_until(
                    lambda: (
                        self.process.poll() is not None
                        or ("baresip is ready." in self.output() and answers_udp(self.port, user))
                    ),
                    timeout=10,
                    what="baresip to be ready",
                )
            except BaseException:
                self.stop()
                raise
            if self.process.poll() is None:
                return
            self.log.close()
        raise AssertionError(f"baresip would not start:\n{self.output()}")


def registering(user: str, registrar_port: int, password: str, *, expires: int) -> str:
    """A baresip account line for `user` that REGISTERs to 127.0.0.1:registrar_port every
    `expires` seconds (baresip asks for that expiry, and refreshes before it runs out)."""
    return f"<sip:{user}@127.0.0.1:{registrar_port}>;auth_pass={password};regint={expires}"


@dataclass(frozen=True)
class SipsakAnswer:
    exit_code: int
    status_code: int | None
    output: str


async def sipsak_options(uri: str, *, timeout: float = 10.0) -> SipsakAnswer:
    """`sipsak -s URI -v`: one OPTIONS from another client; exit 0 only on a 2xx answer.

    sipsak truncates a 5-digit port in the URI it writes into the request, but sends to the
    right one; the peers here ignore the request-URI's port.
    """
    process = await asyncio.create_subprocess_exec(
        program("sipsak"), "-s", uri, "-v",
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with asyncio.timeout(timeout):
            out, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"sipsak did not finish within {timeout}s") from None
    text = out.decode(errors="replace")
    status = re.search(r"^SIP/2\.0 (\d{3})", text, re.MULTILINE)
    assert process.returncode is not None
    return SipsakAnswer(process.returncode, int(status.group(1)) if status else None, text)


# --- A scripted UAS of our own --------------------------------------------------------------

Step = tuple[float, bytes | Callable[[bytes], bytes]]
"""(delay in seconds since the request came, what to send: raw bytes or built from the request,
or CLOSE to close a TCP connection)"""
CLOSE = b"\x00close"


def reply(code: int, reason: str, **overrides: str) -> Callable[[bytes], bytes]:
    """A response to the request that came, echoing Via, From, To, Call-ID and CSeq (RFC 3261
    8.2.6.2); `overrides` replace a header's value (e.g. `Via=...` to answer another branch)."""

    def build(request: bytes) -> bytes:
        head = request.split(b"\r\n\r\n", 1)[0].decode()
        wanted = ("via", "from", "to", "call-id", "cseq")
        lines = [f"SIP/2.0 {code} {reason}"]
        for line in head.split("\r\n")[1:]:
            name = line.split(":", 1)[0].strip()
            if name.lower() in wanted:
                value = overrides.get(name.replace("-", "_"), line.split(":", 1)[1].strip())
                if name.lower() == "to" and code > 100 and "tag=" not in value:
                    value += ";tag=uas"
                lines.append(f"{name}: {value}")
        lines += ["Server: netmon-test-uas", "Content-Length: 0"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    return build


@dataclass
class ScriptedUas:
    """Answers every request it receives with `script`; records requests and arrival times."""

    script: Sequence[Step]
    transport: str = "udp"
    port: int = 0
    received: list[bytes] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _udp: asyncio.DatagramTransport | None = None
    _server: asyncio.Server | None = None
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def start(self) -> ScriptedUas:
        loop = asyncio.get_running_loop()
        if self.transport == "udp":
            uas = self

            class _Protocol(asyncio.DatagramProtocol):
                def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
                    uas.received.append(data)
                    uas._play(data, lambda out: uas._send_udp(out, addr))

            self._udp, _ = await loop.create_datagram_endpoint(
                _Protocol, local_addr=("127.0.0.1", 0)
            )
            self.port = int(self._udp.get_extra_info("sockname")[1])
        else:
            self._server = await asyncio.start_server(self._on_tcp, "127.0.0.1", 0)
            self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def _send_udp(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if self._udp is not None and not self._udp.is_closing():
            self._udp.sendto(data, addr)

    async def _on_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        with contextlib.suppress(asyncio.IncompleteReadError, OSError):
            request = await reader.readuntil(b"\r\n\r\n")
            self.received.append(request)
            self._play(request, writer.write)
            await reader.read()  # hold the connection until the client closes it
        writer.close()

    def _play(self, request: bytes, send: Callable[[bytes], None]) -> None:
        async def run() -> None:
            started = asyncio.get_running_loop().time()
            for delay, what in self.script:
                await asyncio.sleep(max(0.0, started + delay - asyncio.get_running_loop().time()))
                if what == CLOSE:
                    for writer in self._writers:
                        writer.close()
                    return
                send(what if isinstance(what, bytes) else what(request))

        task = asyncio.get_running_loop().create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self._udp is not None:
            self._udp.close()
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class SilentUdp:
    """A bound UDP socket that never answers; `datagrams()` drains and returns what came."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = int(self.sock.getsockname()[1])
        self._got: list[bytes] = []

    def datagrams(self) -> list[bytes]:
        while True:
            try:
                self._got.append(self.sock.recv(65536))
            except BlockingIOError:
                return list(self._got)

    def close(self) -> None:
        self.sock.close()


# --- Fixtures --------------------------------------------------------------------------------


Peer = TypeVar("Peer", bound=_SipPeer)


def started_peers(
    tmp_path: Path, peer: Callable[..., Peer], name: str
) -> Iterator[Callable[..., Peer]]:
    """A factory fixture's body: each call starts a peer in a directory of its own; every
    peer started is stopped when the test ends."""
    started: list[Peer] = []

    def start(**kwargs: Any) -> Peer:
        running = peer(tmp_path / f"{name}-{len(started)}", **kwargs)
        started.append(running)
        return running

    try:
        yield start
    finally:
        for running in started:
            running.stop()


@pytest.fixture
def kamailio_factory(tmp_path: Path) -> Iterator[Callable[..., Kamailio]]:
    yield from started_peers(tmp_path, Kamailio, "kamailio")


@pytest.fixture
def kamailio(kamailio_factory: Callable[..., Kamailio]) -> Kamailio:
    """Kamailio answering 200 to OPTIONS, and 503 to those addressed to user `busy`."""
    return kamailio_factory(replies={"busy": (503, "Service Unavailable")})


@pytest.fixture
def baresip(tmp_path: Path) -> Iterator[Baresip]:
    peer = Baresip(tmp_path, user="alice")
    try:
        yield peer
    finally:
        peer.stop()


@pytest.fixture
async def scripted_uas() -> AsyncIterator[Callable[..., Any]]:
    started: list[ScriptedUas] = []

    async def start(script: Sequence[Step], *, transport: str = "udp") -> ScriptedUas:
        uas = await ScriptedUas(script=script, transport=transport).start()
        started.append(uas)
        return uas

    try:
        yield start
    finally:
        for uas in started:
            await uas.close()


@pytest.fixture
def silent_udp() -> Iterator[SilentUdp]:
    peer = SilentUdp()
    try:
        yield peer
    finally:
        peer.close()
