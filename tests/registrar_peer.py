"""A real Kamailio registrar owned by a test, with netmon's shipped config snippet included.

`KamailioRegistrar` runs kamailio with usrloc, registrar and digest auth (`pv_auth_check`
against passwords in an htable: no database server) on a free loopback UDP port for SIP, and
serves JSON-RPC on a free TCP port through deploy/kamailio/netmon-registrar.cfg, included as
shipped: the lab config (netmon_lab/registrar.py, which the demo's registrar runs too) is what
an operator's kamailio.cfg is, and it adds the snippet exactly as the snippet's own comments
tell an operator to. A REGISTER with a wrong password
gets "401 Unauthorized", one for a user it does not know "403 Forbidden", both recorded in the
`regfail` htable by the snippet's routes.

The fixture (tests/conftest.py lists this module as a plugin): `registrar_factory(
users={"alice": "secret"}, rpc_auth=("netmon", "pw"))`; every registrar is stopped after
the test. Baresips registering to it: `tests.sip_peers.Baresip(..., accounts=[registering(
...)])`.
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from netmon_lab.registrar import render_config, rpc_authorization, snippet
from tests.helpers import wait_until
from tests.peers import free_port
from tests.sip_peers import (
    KAMAILIO_MODULES,
    _SipPeer,
    answers_udp,
    free_udp_tcp_port,
    program,
    started_peers,
)


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
        self._authorization = None if rpc_auth is None else rpc_authorization(*rpc_auth)
        # The snippet as an installed netmon_lab ships it: the demo's registrar is this one.
        self._snippet = contextlib.ExitStack()
        self.config = workdir / "kamailio.cfg"
        self.config.write_text(
            render_config(
                sip_port=self.port,
                rpc_port=self.rpc_port,
                users=users,
                modules=KAMAILIO_MODULES,
                snippet=self._snippet.enter_context(snippet()),
                authorization=self._authorization,
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

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            self._snippet.close()

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
    yield from started_peers(tmp_path, KamailioRegistrar, "registrar")
