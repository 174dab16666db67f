"""The HTTP(S) probe against real servers on loopback: status and text checks, redirects, TLS
with a self-signed certificate made here, a secret header, a server that never answers; its
settings as the config sees them; and `netmon run` with a service watched only over HTTP."""

from __future__ import annotations

import asyncio
import datetime
import http.server
import ipaddress
import json
import logging
import socket
import ssl
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from collectors.base import CollectError
from collectors.http import HttpCollector
from collectors.http_settings import HttpSettings
from netmon.config.errors import ConfigError
from netmon.config.loader import load_data
from netmon.model import HttpAnswer, ProbeTarget
from tests.conftest import require_program
from tests.helpers import NetmonProcess, metric_value, wait_until, write_config

AUTHORIZATION = "Bearer s3cr3t-token-9f4c2a"
PORTAL_ENV = "NETMON_TEST_PORTAL_TOKEN"
HANG = 30.0  # seconds: far beyond any probe timeout here; reached only by a hang
PAGE = "<html><title>Cổng dịch vụ công</title><body>Đăng nhập hệ thống</body></html>"


@dataclass
class Certificate:
    cert_file: Path
    key_file: Path
    not_after: float


def make_certificate(directory: Path) -> Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost, as a lab device would have."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "netmon test device")])
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=42))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "device.pem", directory / "device.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(cert_file, key_file, certificate.not_valid_after_utc.timestamp())


def server_context(certificate: Certificate) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate.cert_file, certificate.key_file)
    return context


@dataclass
class Site:
    """A device's management page: what it serves and what it was sent."""

    base: str
    authorizations: list[str] = field(default_factory=list)


def _app(site_requests: list[str]) -> web.Application:
    async def page(request: web.Request) -> web.Response:
        site_requests.append(request.headers.get("Authorization", ""))
        return web.Response(text=PAGE, content_type="text/html")

    async def broken(_request: web.Request) -> web.Response:
        return web.Response(status=503, text="Service Unavailable")

    async def moved(_request: web.Request) -> web.Response:
        raise web.HTTPFound("/")

    async def empty(_request: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/broken", broken)
    app.router.add_get("/moved", moved)
    app.router.add_get("/empty", empty)
    return app


async def _serve(host: str, context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, Site]:
    requests: list[str] = []
    runner = web.AppRunner(_app(requests), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, 0, ssl_context=context).start()
    port = runner.addresses[0][1]
    shown = f"[{host}]" if ":" in host else host
    return runner, Site(f"{'https' if context else 'http'}://{shown}:{port}", requests)


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    runner, served = await _serve("127.0.0.1")
    try:
        yield served
    finally:
        await runner.cleanup()


@pytest.fixture
def certificate(tmp_path: Path) -> Certificate:
    return make_certificate(tmp_path)


@pytest.fixture
async def tls_site(certificate: Certificate) -> AsyncIterator[Site]:
    runner, served = await _serve("127.0.0.1", server_context(certificate))
    try:
        yield served
    finally:
        await runner.cleanup()


@pytest.fixture
async def probe() -> AsyncIterator[HttpCollector]:
    collector = HttpCollector()
    await collector.start()
    try:
        yield collector
    finally:
        await collector.close()


TARGET = ProbeTarget(id="portal", address="127.0.0.1")


def _settings(**values: Any) -> HttpSettings:
    return HttpSettings.model_validate(values)


async def _answer(probe: HttpCollector, **values: Any) -> HttpAnswer:
    return await probe.collect(TARGET, _settings(**values))


async def _failure(probe: HttpCollector, **values: Any) -> tuple[CollectError, float]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    # Only a hang guard: how fast a failure is known is said by its reason (refused, timeout),
    # never by a wall-clock bound that a loaded machine can miss.
    async with asyncio.timeout(HANG):
        with pytest.raises(CollectError) as caught:
            await probe.collect(TARGET, _settings(**values))
    return caught.value, loop.time() - started


async def test_the_page_answers_with_the_expected_text(probe: HttpCollector, site: Site) -> None:
    answer = await _answer(probe, url=site.base + "/", expect_text="Đăng nhập")
    assert answer.ok
    assert (answer.target, answer.collector) == ("portal", "http")
    assert answer.status_code == 200
    assert answer.cert_not_after is None
    assert answer.duration > 0


async def test_an_unexpected_status_is_a_failure_that_keeps_the_code(
    probe: HttpCollector, site: Site
) -> None:
    answer = await _answer(probe, url=site.base + "/broken")
    assert not answer.ok
    assert (answer.reason, answer.detail, answer.status_code) == ("status", "HTTP 503", 503)
    assert (await _answer(probe, url=site.base + "/broken", expect_status=[200, "5xx"])).ok


async def test_missing_text_is_a_failure(probe: HttpCollector, site: Site) -> None:
    answer = await _answer(probe, url=site.base + "/", expect_text="Quản trị")
    assert not answer.ok
    assert answer.reason == "text"
    assert answer.status_code == 200


async def test_a_redirect_is_an_answer_unless_followed(probe: HttpCollector, site: Site) -> None:
    answer = await _answer(probe, url=site.base + "/moved", expect_text="Đăng nhập")
    assert answer.status_code == 302
    assert answer.reason == "text"  # the redirect itself has no such text
    answer = await _answer(probe, url=site.base + "/moved")
    assert answer.ok
    assert answer.status_code == 302
    followed = await _answer(
        probe, url=site.base + "/moved", follow_redirects=True, expect_text="Đăng nhập"
    )
    assert followed.ok
    assert followed.status_code == 200
    assert followed.url == site.base + "/"


async def test_a_path_is_joined_to_the_target_address(probe: HttpCollector) -> None:
    runner, served = await _serve("::1")
    try:
        port = served.base.rsplit(":", 1)[1]
        target = ProbeTarget(id="ep6", address="::1")
        answer = await probe.collect(target, _settings(url=f"http://{{address}}:{port}/broken"))
        assert (answer.status_code, answer.url) == (503, f"http://[::1]:{port}/broken")
    finally:
        await runner.cleanup()
    assert _settings(url="/login").url_for("10.1.2.3") == "http://10.1.2.3/login"
    assert _settings().url_for("2001:db8::5") == "http://[2001:db8::5]/"
    assert _settings(url="https://dvc.example/").url_for("x") == "https://dvc.example/"


async def test_a_closed_port_is_refused(probe: HttpCollector) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error, _ = await _failure(probe, url=f"http://127.0.0.1:{port}/")
    assert error.reason == "refused"  # known from the refusal, not after the probe's timeout


async def test_a_server_that_never_answers_times_out(probe: HttpCollector) -> None:
    with socket.socket() as sock:  # accepts connections (backlog), reads nothing, says nothing
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)
        port = sock.getsockname()[1]
        error, elapsed = await _failure(probe, url=f"http://127.0.0.1:{port}/", timeout=0.5)
    assert error.reason == "timeout"
    assert error.detail == "no answer within 0.5s"
    assert elapsed >= 0.5  # it waited the whole timeout; no upper bound: a loaded machine is slow


async def test_a_self_signed_certificate_is_not_trusted_by_default(
    probe: HttpCollector, tls_site: Site
) -> None:
    error, _ = await _failure(probe, url=tls_site.base + "/")
    assert error.reason == "tls"
    assert "self-signed certificate" in error.detail


async def test_without_verification_the_certificate_expiry_is_still_read(
    probe: HttpCollector, tls_site: Site, certificate: Certificate
) -> None:
    answer = await _answer(probe, url=tls_site.base + "/", verify_tls=False, expect_text="Cổng")
    assert answer.ok
    assert answer.cert_not_after == certificate.not_after
    # An empty answer hands its connection back before the caller sees the response.
    empty = await _answer(probe, url=tls_site.base + "/empty", verify_tls=False)
    assert empty.status_code == 204
    assert empty.cert_not_after == certificate.not_after


async def test_the_lab_ca_file_is_trusted(
    probe: HttpCollector, tls_site: Site, certificate: Certificate
) -> None:
    answer = await _answer(probe, url=tls_site.base + "/", ca_file=str(certificate.cert_file))
    assert answer.ok
    assert answer.cert_not_after == certificate.not_after
    # The certificate is for 127.0.0.1 and localhost, not for 127.0.0.2.
    runner, other = await _serve("127.0.0.2", server_context(certificate))
    try:
        error, _ = await _failure(probe, url=other.base + "/", ca_file=str(certificate.cert_file))
    finally:
        await runner.cleanup()
    assert error.reason == "tls"
    assert "127.0.0.2" in error.detail


async def test_a_header_secret_goes_on_the_wire_only(
    probe: HttpCollector, site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    headers = {"Authorization": AUTHORIZATION}
    settings = _settings(url=site.base + "/", headers=headers, expect_text="Đăng nhập")
    answer = await probe.collect(TARGET, settings)
    assert answer.ok
    assert site.authorizations == [AUTHORIZATION]
    failed = await probe.collect(TARGET, _settings(url=site.base + "/broken", headers=headers))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)
        port = sock.getsockname()[1]
        with pytest.raises(CollectError) as timeout:
            await probe.collect(
                TARGET, _settings(url=f"http://127.0.0.1:{port}/", headers=headers, timeout=0.3)
            )
    shown = [
        caplog.text,
        repr(answer),
        repr(failed),
        str(failed.detail),
        timeout.value.detail,
        repr(settings),
        settings.model_dump_json(),
    ]
    for text in shown:
        assert "s3cr3t" not in text
    assert "<secret>" in repr(settings)


def test_defaults() -> None:
    settings = HttpSettings()
    assert (settings.interval, settings.timeout) == (60.0, 5.0)
    assert settings.url is None
    assert settings.expect_status == ((200, 399),)
    assert (settings.verify_tls, settings.ca_file, settings.follow_redirects) == (True, None, False)
    assert settings.expect_text is None
    assert settings.headers == {}
    assert settings.accepts(302)
    assert not settings.accepts(404)


def test_a_secret_header_in_the_defaults_survives_a_target_override(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PORTAL_ENV, AUTHORIZATION)
    inventory = load_data(
        {
            "defaults": {"http": {"headers": {"Authorization": {"env": PORTAL_ENV}}}},
            "targets": [
                {"id": "dvc", "address": "dichvucong.example", "kind": "service",
                 "probes": {"http": {"url": "https://dichvucong.example/"}}},
            ],
        }
    )  # fmt: skip
    settings = inventory.targets["dvc"].probe("http")
    assert isinstance(settings, HttpSettings)
    assert settings.headers["Authorization"].reveal() == AUTHORIZATION


P = "targets[0].probes.http"
BAD_SETTINGS = [
    (
        {"url": "ftp://x/"},
        "url: expected an http:// or https:// URL with a host, or a path such as /login",
    ),
    (
        {"url": "http://admin:pw@x/"},
        "url: no credentials in the URL (they would show in logs); "
        "use headers: {Authorization: ...}, which is a secret",
    ),
    ({"url": "http://x:99999/"}, "url: the port in the URL is not a number from 1 to 65535"),
    (
        {"expect_status": ["abc"]},
        "expect_status[0]: not a status code or range: 'abc' (examples: 200, 200-399, 2xx)",
    ),
    (
        {"expect_status": ["399-200"]},
        "expect_status: 399-200 is not a range of HTTP status codes (100-599, low first)",
    ),
    ({"expect_status": []}, "expect_status: at least one status code or range"),
    ({"timeout": "1m"}, ": timeout 60s must be shorter than the interval 60s"),
    (
        {"verify_tls": False, "ca_file": "/etc/hosts"},
        ": ca_file is only used with verify_tls: true",
    ),
    ({"ca_file": "/nonexistent/ca.pem"}, "ca_file: Path does not point to a file"),
    ({"headers": {"Bad Name": "x"}}, "headers: not a valid header name: 'Bad Name'"),
    (
        {"headers": {"X-Token": "a\r\nb"}},
        "headers.X-Token: a header value must not contain line breaks",
    ),
]


@pytest.mark.parametrize(("probe", "problem"), BAD_SETTINGS)
def test_bad_settings(probe: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_data({"targets": [{"id": "ep", "address": "10.0.0.1", "probes": {"http": probe}}]})
    where = P if problem.startswith(":") else P + "."
    assert [str(p) for p in caught.value.problems] == [where + problem]


# --- netmon run: a service watched over HTTP(S) only, and an endpoint's H.323 port ---


class _Handler(http.server.BaseHTTPRequestHandler):
    authorizations: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).authorizations.append(self.headers.get("Authorization", ""))
        status, body = (503, b"down") if self.path == "/broken" else (200, PAGE.encode())
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def threaded_site(certificate: Certificate) -> Iterator[tuple[str, str]]:
    """Plain and TLS servers in threads: the test itself blocks while it waits for netmon."""
    servers = []
    for context in (None, server_context(certificate)):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        if context is not None:
            server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    plain, tls = (f"127.0.0.1:{server.server_address[1]}" for server in servers)
    try:
        yield plain, tls
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def test_netmon_run_watches_a_service_over_http_and_an_endpoint_over_tcp(
    tmp_path: Path,
    threaded_site: tuple[str, str],
    certificate: Certificate,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plain, tls = threaded_site
    monkeypatch.setenv(PORTAL_ENV, AUTHORIZATION)
    fast = {"interval": "1s", "timeout": "500ms"}
    with socket.socket() as h323:
        h323.bind(("127.0.0.1", 0))
        h323.listen(16)
        config = write_config(
            tmp_path / "netmon.yaml",
            {
                "instance": "test",
                "defaults": {
                    "http": {**fast, "headers": {"Authorization": {"env": PORTAL_ENV}}},
                    "tcp": fast,
                },
                "targets": [
                    {"id": "dichvucong", "address": "127.0.0.1", "kind": "service",
                     "probes": {"http": {"url": f"http://{plain}/", "expect_text": "Đăng nhập"}}},
                    {"id": "qlvb", "address": "127.0.0.1", "kind": "service",
                     "probes": {"http": {"url": f"http://{plain}/broken"}}},
                    {"id": "phonghop", "address": "127.0.0.1", "kind": "service",
                     "probes": {"http": {"url": f"https://{tls}/", "verify_tls": False}}},
                    {"id": "ep-h323", "address": "127.0.0.1",
                     "probes": {"tcp": {"port": h323.getsockname()[1]}}},
                ],
            },
        )  # fmt: skip
        netmon = NetmonProcess(config)

        def every_probe_ran() -> str:
            scrape = netmon.metrics()
            ran = [
                metric_value(scrape, "netmon_probe_age_seconds", target=target)
                for target in ("dichvucong", "qlvb", "phonghop", "ep-h323")
            ]
            return scrape if None not in ran else ""

        try:
            text = wait_until(every_probe_ran, what="a result from every probe")
            _, _, api = netmon.get("/api/v1/targets/qlvb")
            promtool = subprocess.run(
                [require_program("promtool"), "check", "metrics"],
                input=text, capture_output=True, text=True,
            )  # fmt: skip
        finally:
            netmon.stop()

    def value(name: str, **labels: str) -> float | None:
        return metric_value(text, name, **labels)

    assert value("netmon_probe_success", target="dichvucong", probe="http") == 1
    assert value("netmon_probe_success", target="phonghop", probe="http") == 1
    assert value("netmon_probe_success", target="ep-h323", probe="tcp") == 1
    assert (value("netmon_probe_duration_seconds", target="ep-h323", probe="tcp") or 0) > 0
    assert value("netmon_probe_success", target="qlvb", probe="http") == 0
    assert value("netmon_http_status_code", target="dichvucong") == 200
    assert value("netmon_http_status_code", target="qlvb") == 503
    assert value("netmon_tls_cert_not_after_seconds", target="phonghop") == certificate.not_after
    assert value("netmon_tls_cert_not_after_seconds", target="dichvucong") is None
    assert value("netmon_targets", kind="service") == 3

    probe = json.loads(api)["probes"]["http"]
    assert (probe["success"], probe["reason"], probe["detail"]) == (False, "status", "HTTP 503")

    assert promtool.returncode == 0, promtool.stdout + promtool.stderr
    assert promtool.stdout.strip() == promtool.stderr.strip() == ""

    assert AUTHORIZATION in _Handler.authorizations
    assert not any("s3cr3t" in line for line in netmon.stderr_lines)
    assert "s3cr3t" not in text
    assert "s3cr3t" not in api
    failing = [e for e in netmon.events if e.get("msg") == "probe failing"]
    assert [(e["target"], e["reason"]) for e in failing] == [("qlvb", "status")]
