"""A real Kamailio registrar owned by a test, with netmon's shipped config snippet included.

`KamailioRegistrar` runs kamailio with usrloc, registrar and digest auth (`pv_auth_check`
against passwords in an htable: no database server) on a free loopback UDP port for SIP, and
serves JSON-RPC on a free TCP port through deploy/kamailio/netmon-registrar.cfg, included as
shipped: the lab config below is what an operator's kamailio.cfg is, and it adds the snippet
exactly as the snippet's own comments tell an operator to. A REGISTER with a wrong password
gets "401 Unauthorized", one for a user it does not know "403 Forbidden", both recorded in the
`regfail` htable by the snippet's routes.

The fixture (tests/conftest.py lists this module as a plugin): `registrar_factory(
users={"alice": "secret"}, rpc_auth=("netmon", "pw"))`; every registrar is stopped after
the test. Baresips registering to it: `tests.sip_peers.Baresip(..., accounts=[registering(
...)])`.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_until
from tests.peers import free_port
from tests.sip_peers import KAMAILIO_MODULES, _SipPeer, answers_udp, free_udp_tcp_port, program

SNIPPET = Path(__file__).resolve().parent.parent / "deploy" / "kamailio" / "netmon-registrar.cfg"

LAB_CONFIG = """#!KAMAILIO
# The lab's registrar: an operator's own kamailio.cfg, in a few lines.
#!define NETMON_RPC_PORT {rpc_port}
{rpc_auth}
debug=2
log_stderror=yes
children=2
tcp_children=2
auto_aliases=no
listen=udp:127.0.0.1:{sip_port}
listen=tcp:127.0.0.1:{rpc_port}
mpath="{modules}/"

loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"

# Short registrations for tests: a contact lives as long as the UA asks (down to 1 s), and
# the timer removes expired ones every second.
modparam("usrloc", "timer_interval", 1)
modparam("registrar", "min_expires", 1)
modparam("registrar", "default_expires", 30)

include_file "{snippet}"

modparam("htable", "htable", "passwd=>size=8;")
event_route[htable:mod-init] {{
{passwords}}}

request_route {{
    if ($rm != "REGISTER") {{
        sl_send_reply("405", "Method Not Allowed");
        exit;
    }}
    if ($sht(passwd=>$tU) == $null) {{
        $var(netmon_refusal) = "403 Forbidden";
        route(NETMON_REGFAIL);
        sl_send_reply("403", "Forbidden");
        exit;
    }}
    if (!pv_auth_check("$td", "$sht(passwd=>$tU)", "0", "1")) {{
        $var(rc) = $rc;
        if ($var(rc) == -2 || $var(rc) == -8) {{
            $var(netmon_refusal) = "401 Unauthorized";
            route(NETMON_REGFAIL);
        }}
        auth_challenge("$td", "0");
        exit;
    }}
    if (!save("location")) {{
        sl_reply_error();
        exit;
    }}
    route(NETMON_REGOK);
}}
"""


def _quoted(value: str) -> str:
    for forbidden in ('"', "\\", "\n"):
        assert forbidden not in value, f"{value!r}: no {forbidden!r} in a kamailio.cfg string"
    return f'"{value}"'


class KamailioRegistrar(_SipPeer):
    """Kamailio as a registrar: SIP on udp 127.0.0.1:port, JSON-RPC at `rpc_url`."""

    def __init__(
        self,
        workdir: Path,
        *,
        users: dict[str, str],
        rpc_auth: tuple[str, str] | None = None,
    ) -> None:
        binary = program("kamailio")
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_udp_tcp_port()
        self.rpc_port = free_port()
        self.rpc_url = f"http://127.0.0.1:{self.rpc_port}/RPC"
        self._authorization: str | None = None
        auth_define = ""
        if rpc_auth is not None:
            token = base64.b64encode(f"{rpc_auth[0]}:{rpc_auth[1]}".encode()).decode()
            self._authorization = f"Basic {token}"
            auth_define = f"#!define NETMON_RPC_AUTH {_quoted(self._authorization)}"
        passwords = "".join(
            f"    $sht(passwd=>{user}) = {_quoted(password)};\n" for user, password in users.items()
        )
        self.config = workdir / "kamailio.cfg"
        self.config.write_text(
            LAB_CONFIG.format(
                rpc_port=self.rpc_port,
                rpc_auth=auth_define,
                sip_port=self.port,
                modules=KAMAILIO_MODULES,
                snippet=SNIPPET,
                passwords=passwords or "    $var(none) = 0;\n",
            )
        )
        runtime = workdir / "kamailio-run"
        runtime.mkdir(exist_ok=True)
        self._start(
            [
                binary,
                "-f",
                str(self.config),
                "-DD",
                "-E",
                "-Y",
                str(runtime),
                "-m",
                "32",
                "-M",
                "8",
            ],
            workdir,
            "kamailio",
        )
        try:
            wait_until(
                lambda: self._alive() and answers_udp(self.port) and self._rpc_answers(),
                timeout=10,
                what="kamailio to answer REGISTERs and JSON-RPC",
            )
        except BaseException:
            self.stop()
            raise

    def rpc(self, method: str, *params: str) -> Any:
        """One JSON-RPC call as netmon makes it (the snippet lets only those through), from
        the test's side: what the registrar itself says, to compare netmon's view with."""
        document: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params:
            document["params"] = list(params)
        document["id"] = 1
        body = json.dumps(document, separators=(",", ":")).encode()
        request = urllib.request.Request(self.rpc_url, data=body, method="POST")  # noqa: S310
        if self._authorization is not None:
            request.add_header("Authorization", self._authorization)
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return json.loads(response.read())

    def _rpc_answers(self) -> bool:
        try:
            return "result" in self.rpc("ul.dump")
        except (OSError, urllib.error.URLError):
            return False

    def tcp_connections(self) -> list[str]:
        """The remote ends of the established TCP connections to the RPC port, as the kernel
        lists them (/proc/net/tcp: the RPC refuses core.tcp_list, as it should)."""
        found = []
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == self.rpc_port:
                found.append(remote)
        return found

    def aors(self) -> set[str]:
        """The AoRs in the location table now, as the registrar lists them."""
        domains = self.rpc("ul.dump")["result"]["Domains"]
        return {aor["Info"]["AoR"] for domain in domains for aor in domain["Domain"]["AoRs"]}


@pytest.fixture
def registrar_factory(tmp_path: Path) -> Iterator[Callable[..., KamailioRegistrar]]:
    started: list[KamailioRegistrar] = []

    def start(**kwargs: Any) -> KamailioRegistrar:
        peer = KamailioRegistrar(tmp_path / f"registrar-{len(started)}", **kwargs)
        started.append(peer)
        return peer

    try:
        yield start
    finally:
        for peer in started:
            peer.stop()
