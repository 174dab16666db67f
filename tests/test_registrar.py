"""The `kamailio` probe: the registrar's view of who is registered, against real Kamailio.

Kamailio (usrloc + registrar + digest auth, JSON-RPC served through the shipped
deploy/kamailio/netmon-registrar.cfg) and baresip user agents registering to it on loopback;
a fake JSON-RPC endpoint of the test's own for the answers a real registrar does not give.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from collectors.base import CollectError
from collectors.codec_settings import KamailioSettings
from collectors.registrar.kamailio import KamailioCollector, parse_htable_dump, parse_ul_dump
from netmon.credentials import ApiCredential, Secret
from netmon.model import ProbeTarget, RegistrarContacts
from tests.helpers import poll
from tests.peers import free_port
from tests.registrar_peer import KamailioRegistrar
from tests.sip_peers import Baresip, registering

DATA = Path(__file__).parent / "data" / "kamailio"
EXPIRES = 5  # seconds a baresip registration asks for: a killed one is gone soon after


@pytest.fixture
async def collector() -> AsyncIterator[KamailioCollector]:
    collector = KamailioCollector()
    await collector.start()
    try:
        yield collector
    finally:
        await collector.close()


def settings(url: str, **overrides: object) -> KamailioSettings:
    return KamailioSettings.model_validate({"url": url, "timeout": 5, **overrides})


def target(password: str | None = None) -> ProbeTarget:
    credentials = (
        {} if password is None else {"rpc": ApiCredential(user="netmon", password=Secret(password))}
    )
    return ProbeTarget(id="registrar", address="127.0.0.1", credentials=credentials)


async def poll_until(
    collector: KamailioCollector,
    registrar: KamailioRegistrar,
    condition: Callable[[RegistrarContacts], bool],
    what: str,
    timeout: float = 20.0,
) -> RegistrarContacts:
    """Poll the registrar until `condition` holds for netmon's view of it."""
    return await poll(
        lambda: collector.collect(target(), settings(registrar.rpc_url)),
        condition,
        timeout=timeout,
        interval=0.1,
        what=what,
    )


def aors(seen: RegistrarContacts) -> set[str]:
    return {contact.aor for contact in seen.contacts}


def baresip(
    tmp_path: Path, name: str, user: str, registrar: KamailioRegistrar, password: str
) -> Baresip:
    line = registering(user, registrar.port, password, expires=EXPIRES)
    return Baresip(tmp_path / name, user=user, accounts=[line])


# --- Against real kamailio and baresip ---------------------------------------------------------


async def test_a_registered_baresip_is_a_live_contact_with_its_user_agent_and_expiry(
    collector: KamailioCollector,
    registrar_factory: Callable[..., KamailioRegistrar],
    tmp_path: Path,
) -> None:
    registrar = registrar_factory(users={"alice": "secret", "bob": "secret"})
    empty = await collector.collect(target(), settings(registrar.rpc_url))
    assert empty.ok
    assert empty.registrar == "kamailio"
    assert empty.contacts == ()
    alice = baresip(tmp_path, "alice", "alice", registrar, "secret")
    try:
        seen = await poll_until(collector, registrar, lambda s: "alice" in aors(s), "alice")
        (contact,) = seen.contacts
        assert contact.contact.startswith("sip:alice")
        assert f":{alice.port}" in contact.contact
        assert contact.user_agent.startswith("baresip v")
        assert contact.expires is not None
        assert time.time() < contact.expires <= time.time() + EXPIRES + 1
        assert contact.received == ""  # no NAT here: Kamailio's "[not set]" is empty
        assert seen.failures == ()
        assert registrar.aors() == {"alice"}  # what Kamailio itself says
    finally:
        alice.stop()


async def test_a_stopped_baresip_unregisters_and_a_killed_one_expires(
    collector: KamailioCollector,
    registrar_factory: Callable[..., KamailioRegistrar],
    tmp_path: Path,
) -> None:
    registrar = registrar_factory(users={"alice": "secret", "bob": "secret"})
    alice = baresip(tmp_path, "alice", "alice", registrar, "secret")
    bob = baresip(tmp_path, "bob", "bob", registrar, "secret")
    try:
        seen = await poll_until(collector, registrar, lambda s: aors(s) == {"alice", "bob"}, "both")
        # SIGTERM: baresip sends REGISTER with Expires: 0 on its way out.
        alice.stop()
        await poll_until(collector, registrar, lambda s: aors(s) == {"bob"}, "alice removed")
        # SIGKILL: no goodbye; the contact lives until it expires, and then netmon says so.
        bob_expires = next(c.expires for c in seen.contacts if c.aor == "bob")
        assert bob_expires is not None
        bob.process.kill()
        bob.process.wait()
        gone = await poll_until(collector, registrar, lambda s: not s.contacts, "bob expired")
        assert gone.ok
        assert gone.failures == ()
    finally:
        alice.stop()  # again: a no-op for a stopped peer
        bob.stop()


async def test_a_wrong_password_is_no_contact_and_the_registrars_reason(
    collector: KamailioCollector,
    registrar_factory: Callable[..., KamailioRegistrar],
    tmp_path: Path,
) -> None:
    registrar = registrar_factory(users={"carol": "right"})
    before = time.time()
    carol = baresip(tmp_path, "carol", "carol", registrar, "wrong")
    mallory = baresip(tmp_path, "mallory", "mallory", registrar, "guess")
    try:
        seen = await poll_until(
            collector, registrar, lambda s: len(s.failures) == 2, "two refusals"
        )
        assert seen.ok
        assert seen.contacts == ()
        reasons = {failure.aor: failure.reason for failure in seen.failures}
        assert reasons == {"carol": "401 Unauthorized", "mallory": "403 Forbidden"}
        for failure in seen.failures:
            assert int(before) <= failure.at <= time.time()
        carol.stop()
        # The right password: registered, and the refusal is history.
        fixed = baresip(tmp_path, "carol-fixed", "carol", registrar, "right")
        try:
            now = await poll_until(collector, registrar, lambda s: "carol" in aors(s), "carol")
            assert [failure.aor for failure in now.failures] == ["mallory"]
        finally:
            fixed.stop()
    finally:
        carol.stop()
        mallory.stop()


async def test_the_rpc_behind_basic_auth(
    collector: KamailioCollector, registrar_factory: Callable[..., KamailioRegistrar]
) -> None:
    registrar = registrar_factory(users={"alice": "secret"}, rpc_auth=("netmon", "rpc-pw"))
    url = registrar.rpc_url
    with pytest.raises(CollectError) as missing:
        await collector.collect(target(), settings(url))
    assert missing.value.reason == "auth"
    assert "set `credential`" in missing.value.detail
    with pytest.raises(CollectError) as wrong:
        await collector.collect(target("not-it"), settings(url, credential="rpc"))
    assert wrong.value.reason == "auth"
    assert "wrong user or password" in wrong.value.detail
    assert "not-it" not in f"{wrong.value.detail} {wrong.value!r} {wrong.value.args}"
    seen = await collector.collect(target("rpc-pw"), settings(url, credential="rpc"))
    assert seen.ok
    assert seen.contacts == ()
    assert seen.failures == ()


def test_the_shipped_snippet_lets_through_only_netmons_two_reads(
    registrar_factory: Callable[..., KamailioRegistrar],
) -> None:
    registrar = registrar_factory(users={"alice": "secret"})
    for body in (
        b'{"jsonrpc":"2.0","method":"ul.rm","params":["location","alice"],"id":1}',
        b'{"jsonrpc":"2.0","method":"core.kill","id":1}',
        b'{"jsonrpc":"2.0","method":"htable.dump","params":["passwd"],"id":1}',
        b'{"jsonrpc":"2.0","method":"ul.dump","id":1,"x":{"method":"core.kill"}}',
    ):
        request = urllib.request.Request(registrar.rpc_url, data=body, method="POST")  # noqa: S310
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)  # noqa: S310
        assert refused.value.code == 403, body
    assert registrar.process.poll() is None  # core.kill did not get through


async def test_one_connection_serves_every_poll(
    collector: KamailioCollector, registrar_factory: Callable[..., KamailioRegistrar]
) -> None:
    registrar = registrar_factory(users={"alice": "secret"})
    for _ in range(5):
        assert (await collector.collect(target(), settings(registrar.rpc_url))).ok
    # Kamailio's own list of TCP connections: netmon's one, kept alive between polls.
    connections = registrar.tcp_connections()
    assert len(connections) == 1, connections


# --- Kamailio's documented shapes, parsed ------------------------------------------------------


def test_ul_dump_and_htable_dump_as_kamailio_56_answers() -> None:
    dump = json.loads((DATA / "ul_dump.json").read_text())["result"]
    contacts = parse_ul_dump(dump, now=1000.0)
    assert [(c.aor, c.expires) for c in contacts] == [("alice", 1004.0), ("bob", 1005.0)]
    assert contacts[0].user_agent == "baresip v1.0.0 (x86_64/linux)"
    assert contacts[1].received == "sip:203.0.113.7:5062"
    table = json.loads((DATA / "htable_dump.json").read_text())["result"]
    failures = parse_htable_dump(table, now=2e9)
    assert sorted((f.aor, f.reason, f.at) for f in failures) == [
        ("carol", "401 Unauthorized", 1796443023.0),
        ("mallory", "403 Forbidden", 1796443024.0),
        ("x-other", "blocked by admin", 2e9),  # no time in the value: dated at the poll
    ]


def test_only_live_contacts_count() -> None:
    dump = json.loads((DATA / "ul_dump_states.json").read_text())["result"]
    contacts = parse_ul_dump(dump, now=1000.0)
    assert [(c.aor, c.contact, c.expires) for c in contacts] == [
        ("static-room", "sip:static-room@198.51.100.9", None),  # "permanent"
        ("room-2@conf.lab", "sip:room-2@198.51.100.10:5060", 1030.0),  # a second table
    ]


# --- Bad answers from a fake RPC endpoint -------------------------------------------------------


class FakeRpc:
    """An HTTP server on a free loopback port answering every POST with `answer`, counting the
    connections it was asked on and the bytes of a big answer it managed to send."""

    def __init__(self) -> None:
        self.answer: Callable[[web.Request], Any] = lambda request: web.json_response({})
        self.peers: set[tuple[str, int]] = set()
        self.sent = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> FakeRpc:
        app = web.Application()
        app.router.add_post("/RPC", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/RPC"
        return self

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        self.peers.add(request.transport.get_extra_info("peername"))
        return await self.answer(request)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def fake_rpc() -> AsyncIterator[FakeRpc]:
    fake = await FakeRpc().start()
    try:
        yield fake
    finally:
        await fake.close()


def text(
    body: str, content_type: str = "application/json", status: int = 200
) -> Callable[[web.Request], Any]:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(text=body, content_type=content_type, status=status)

    return answer


async def failure(collector: KamailioCollector, url: str, **overrides: object) -> CollectError:
    with pytest.raises(CollectError) as caught:
        await collector.collect(target(), settings(url, **overrides))
    return caught.value


async def test_bad_answers_get_clear_reasons(
    collector: KamailioCollector, fake_rpc: FakeRpc
) -> None:
    cases: list[tuple[Callable[[web.Request], Any], str, str]] = [
        (text("<html><body>Welcome</body></html>", "text/html"), "parse", "HTML, not JSON"),
        (text('{"jsonrpc":"2.0","result":{"Domains":[{"Dom'), "parse", "not JSON"),
        (text(""), "parse", "empty"),
        (
            text('{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method Not Found"},"id":1}'),
            "parse",
            "ul.dump: the registrar answered an error: Method Not Found (-32601)",
        ),
        (
            text('{"jsonrpc":"2.0","result":{"Domains":"x"},"id":1}'),
            "parse",
            "Domains is not a list",
        ),
        (text("[1, 2]"), "parse", "not a JSON-RPC object"),
        (text("nope", "text/plain", 401), "auth", "HTTP 401"),
        (text("nope", "text/plain", 404), "status", "HTTP 404 Not Found"),
        (text("oops", "text/plain", 500), "status", "HTTP 500"),
    ]
    for answer, reason, detail in cases:
        fake_rpc.answer = answer
        caught = await failure(collector, fake_rpc.url)
        assert (caught.reason, detail in caught.detail) == (reason, True), (caught.detail, detail)


async def test_an_error_from_the_failures_table_names_it(
    collector: KamailioCollector, fake_rpc: FakeRpc
) -> None:
    dump = (DATA / "ul_dump.json").read_text()

    async def answer(request: web.Request) -> web.Response:
        if b"htable.dump" in await request.read():
            return web.Response(
                text='{"jsonrpc":"2.0","error":{"code":500,"message":"Not Found"},"id":2}'
            )
        return web.Response(text=dump)

    fake_rpc.answer = answer
    caught = await failure(collector, fake_rpc.url, failures_table="regfail")
    assert caught.reason == "parse"
    assert caught.detail == "htable.dump regfail: the registrar answered an error: Not Found (500)"
    seen = await collector.collect(target(), settings(fake_rpc.url, failures_table=None))
    assert seen.ok
    assert len(seen.contacts) == 2
    assert seen.failures == ()


async def test_a_huge_answer_is_refused_unread(
    collector: KamailioCollector, fake_rpc: FakeRpc
) -> None:
    size = 50 << 20
    chunk = b" " * (64 << 10)

    async def announced(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(size)})
        await response.prepare(request)
        for _ in range(size // len(chunk)):
            await response.write(chunk)
            fake_rpc.sent += len(chunk)
        return response

    fake_rpc.answer = announced
    caught = await failure(collector, fake_rpc.url, max_body=1 << 20)
    assert caught.reason == "too_large"
    assert caught.detail == f"the answer is {size} bytes, over max_body ({1 << 20}): not read"
    assert fake_rpc.sent < size

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(size // len(chunk)):
            await response.write(chunk)
        return response

    fake_rpc.answer = chunked
    caught = await failure(collector, fake_rpc.url, max_body=1 << 20)
    assert (caught.reason, caught.detail) == (
        "too_large",
        f"the answer is over max_body ({1 << 20} bytes)",
    )


async def test_a_slow_registrar_times_out_the_whole_poll(
    collector: KamailioCollector, fake_rpc: FakeRpc
) -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="{}")

    fake_rpc.answer = slow
    try:
        caught = await failure(collector, fake_rpc.url, timeout=0.5, interval=2)
    finally:
        release.set()
    assert (caught.reason, caught.detail) == ("timeout", "no answer within 0.5s")


async def test_nothing_listening_is_refused(collector: KamailioCollector) -> None:
    port = free_port()
    caught = await failure(collector, f"http://127.0.0.1:{port}/RPC")
    assert (caught.reason, caught.detail) == ("refused", f"connection refused (port {port})")


async def test_a_closed_kept_connection_is_retried_once(
    collector: KamailioCollector, fake_rpc: FakeRpc
) -> None:
    dump = (DATA / "ul_dump.json").read_text()
    fake_rpc.answer = text(dump)
    assert (await collector.collect(target(), settings(fake_rpc.url, failures_table=None))).ok
    assert (await collector.collect(target(), settings(fake_rpc.url, failures_table=None))).ok
    assert len(fake_rpc.peers) == 1  # the second poll came on the first poll's connection

    async def hang_up(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()  # as a registrar closing an idle connection
        fake_rpc.answer = text(dump)
        return web.Response()

    fake_rpc.answer = hang_up
    seen = await collector.collect(target(), settings(fake_rpc.url, failures_table=None))
    assert seen.ok
    assert len(seen.contacts) == 2
