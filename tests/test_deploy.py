"""deploy/: the files that run netmon beside Prometheus, Alertmanager and Grafana. Each is
checked by the program that will read it (promtool, systemd-analyze, netmon validate), and the
compose file's services are checked to point at each other."""

from __future__ import annotations

import fnmatch
import grp
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from collectors.traps.settings import TrapSettings
from netmon.config.rules import default_rules
from netmon.config.schema import DEFAULT_PORT, HttpConfig, parse_listen
from netmon.config.thresholds import Thresholds
from tests.conftest import require_program
from tests.helpers import (
    NetmonProcess,
    http_get,
    metric_value,
    netmon_command,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.peer

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
RULES = PROMETHEUS / "rules"
RULE_FILES = [RULES / "netmon-recording.yml", RULES / "netmon-alerts.yml"]
SEVERITIES = ("info", "warning", "major", "critical")

# The recorded series the dashboards query by name (issue 6): renaming one empties panels.
DASHBOARD_RECORDINGS = {
    "netmon:interface_in_bits:rate5m",
    "netmon:interface_out_bits:rate5m",
    "netmon:interface_utilization:ratio_rate5m",
    "netmon:interface_errors:rate5m",
    "netmon:interface_discards:rate5m",
    "netmon:icmp_loss:ratio_rate5m",
    "netmon:icmp_rtt_seconds:p95_5m",
}


def run(*command: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_program(command[0]), *command[1:]],
        capture_output=True, text=True, timeout=120, check=False, cwd=cwd,
    )  # fmt: skip


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rules(path: Path) -> list[dict[str, Any]]:
    return [rule for group in load(path)["groups"] for rule in group["rules"]]


ALERTS = rules(RULES / "netmon-alerts.yml")


def test_promtool_accepts_the_rule_files() -> None:
    result = run("promtool", "check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    for path in RULE_FILES:
        assert f"SUCCESS: {len(rules(path))} rules found" in result.stdout.split(path.name)[1]


def test_the_recorded_series_the_dashboards_query_exist() -> None:
    recorded = {rule["record"] for rule in rules(RULES / "netmon-recording.yml")}
    assert recorded >= DASHBOARD_RECORDINGS, DASHBOARD_RECORDINGS - recorded
    assert all(name.startswith("netmon:") for name in recorded)


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-shards.yml"])
def test_promtool_accepts_the_scrape_configs_with_their_rules(config: str) -> None:
    result = run("promtool", "check", "config", str(PROMETHEUS / config))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # A missing rule or file_sd file is only a warning to promtool; to a user it is no rules,
    # or no shard scraped.
    assert "WARNING" not in output, output
    assert "SUCCESS: 2 rule files found" in output
    scrape = {job["job_name"]: job for job in load(PROMETHEUS / config)["scrape_configs"]}
    # The alert rules (NetmonDown...) and the dashboards select job="netmon".
    assert "netmon" in scrape
    assert scrape["netmon"]["scrape_interval"] == "15s"


def test_shards_are_scraped_as_distinct_instances_with_a_shard_label() -> None:
    job = next(
        job
        for job in load(PROMETHEUS / "prometheus-shards.yml")["scrape_configs"]
        if job["job_name"] == "netmon"
    )
    # Relabelling instance would merge the shards' own series (see the file's comment).
    assert "relabel_configs" not in job
    # netmon's shard map, which tests/test_distributed.py reads with a real Prometheus.
    (sd,) = job["http_sd_configs"]
    assert sd["url"].endswith(":9842/api/v1/shards/sd")
    # The file for shards split by hand, which the job's comment offers instead.
    groups = load(PROMETHEUS / "file_sd" / "netmon.yml")
    targets = [target for group in groups for target in group["targets"]]
    assert len(targets) >= 2
    assert len(set(targets)) == len(targets)
    assert all(target.endswith(":9842") for target in targets)
    shards = [group["labels"]["shard"] for group in groups]
    assert len(set(shards)) == len(shards) == len(groups)


def test_promtool_rule_unit_tests_pass() -> None:
    tests = sorted((PROMETHEUS / "tests").glob("*.yml"))
    assert tests
    result = run("promtool", "test", "rules", *map(str, tests))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(tests), result.stdout


def test_every_alert_rule_is_tested_firing_and_silent() -> None:
    cases: dict[str, set[bool]] = {}
    for path in sorted((PROMETHEUS / "tests").glob("*.yml")):
        for group in load(path)["tests"]:
            for case in group.get("alert_rule_test", []):
                cases.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))
    assert ALERTS, "no alert rules in netmon-alerts.yml"
    for alert in ALERTS:
        assert cases.get(alert["alert"]) == {True, False}, f"{alert['alert']}: {cases}"


def test_prometheus_alerts_do_not_repeat_netmons_own() -> None:
    """netmon raises its seconds-scale alerts itself; one of the same name from Prometheus
    would be deduplicated into it by Alertmanager, or page twice a minute apart."""
    own = set(default_rules(Thresholds()))
    assert "EndpointDown" in own
    assert own.isdisjoint(alert["alert"] for alert in ALERTS)


@pytest.mark.parametrize("alert", ALERTS, ids=lambda alert: str(alert["alert"]))
def test_alert_speaks_netmons_severities_and_says_what_to_do(alert: dict[str, Any]) -> None:
    assert alert["labels"]["severity"] in SEVERITIES
    summary, description = alert["annotations"]["summary"], alert["annotations"]["description"]
    assert len(summary) < 120 <= len(description)
    # About a target: it keeps `target`, and gains `district` for Alertmanager's grouping.
    if "netmon_target_info" in alert["expr"]:
        assert "group_left (district, name) netmon_target_info" in alert["expr"]
        assert "$labels.target" in summary


@pytest.mark.parametrize("alert", ALERTS, ids=lambda alert: str(alert["alert"]))
def test_only_critical_prometheus_alerts_page_the_on_call(alert: dict[str, Any]) -> None:
    severity = alert["labels"]["severity"]
    result = run(
        "amtool", "config", "routes", "test",
        f"--config.file={DEPLOY / 'alertmanager.yml'}",
        f"alertname={alert['alert']}", f"severity={severity}", "district=Yên Định",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    receiver = result.stdout.strip()
    # A day-long average or a certificate two weeks from expiry can wait for office hours.
    assert (receiver == "oncall") == (severity == "critical"), receiver
    assert receiver in {"oncall", "noc", "monitoring"}


def comment_above(path: Path, alert: str) -> str:
    """The comment lines right above `- alert: <alert>` in a rule file."""
    lines = path.read_text().splitlines()
    end = next(i for i, line in enumerate(lines) if line.strip() == f"- alert: {alert}")
    start = end
    while start > 0 and lines[start - 1].strip().startswith("#"):
        start -= 1
    return " ".join(line.strip().lstrip("#").strip() for line in lines[start:end])


def test_notifications_failing_says_how_long_its_expression_waits() -> None:
    """Failures and no success over the window, held for `for`: the comment and the
    description give the sum, the time since the last delivery, and no other span."""
    alert = next(alert for alert in ALERTS if alert["alert"] == "NetmonNotificationsFailing")
    (window,) = set(re.findall(r"\[(\d+)m\]", alert["expr"]))
    held = re.fullmatch(r"(\d+)m", alert["for"])
    assert held is not None
    waits = f"{int(window) + int(held[1])} minutes"
    for text in (
        comment_above(RULES / "netmon-alerts.yml", alert["alert"]),
        alert["annotations"]["description"],
    ):
        assert re.findall(r"\d+ minutes", text) == [waits], text


def test_netmon_down_is_critical_and_waits_two_minutes() -> None:
    alert = next(alert for alert in ALERTS if alert["alert"] == "NetmonDown")
    assert re.fullmatch(r'up\{job="netmon"\} == 0', alert["expr"])
    assert alert["for"] == "2m"
    assert alert["labels"]["severity"] == "critical"


# --- systemd ---------------------------------------------------------------------------------

UNIT = DEPLOY / "systemd" / "netmon.service"


def unit_settings(path: Path = UNIT) -> dict[str, list[str]]:
    """Key -> values of a unit file, every occurrence of a key in order."""
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if line and line[0] not in "#;[":
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def installed_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's netmon: systemd-analyze verify
    refuses a unit whose program does not exist, and /usr/local/bin/netmon is only there once
    netmon is installed system-wide. Nothing else is changed."""
    unit = tmp_path / "netmon.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/netmon", netmon_program()))
    return unit


def netmon_program() -> str:
    """This checkout's `netmon` console script, the program the unit and the image run."""
    netmon = shutil.which("netmon", path=str(Path(sys.executable).parent))
    assert netmon is not None, "netmon is not installed in this environment: run `make test`"
    return netmon


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    result = run("systemd-analyze", "verify", str(installed_unit(tmp_path)))
    # A misspelt or unknown directive is only a message to systemd (exit 0), and a protection
    # silently not applied.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_unit_is_hardened(tmp_path: Path) -> None:
    """`systemd-analyze security` rates the sandbox from 0 (locked down) to 10 (none)."""
    result = run("systemd-analyze", "security", "--offline=true", str(installed_unit(tmp_path)))
    assert result.returncode == 0, result.stderr
    exposure = re.search(
        r"Overall exposure level for netmon\.service: ([\d.]+) (\w+)", result.stdout
    )
    assert exposure is not None, result.stdout
    assert float(exposure[1]) < 2.0, result.stdout


def test_the_unit_grants_raw_icmp_and_the_trap_port_and_nothing_else() -> None:
    settings = unit_settings()
    granted = {"CAP_NET_RAW", "CAP_NET_BIND_SERVICE"}
    assert set(" ".join(settings["AmbientCapabilities"]).split()) == granted
    assert set(" ".join(settings["CapabilityBoundingSet"]).split()) == granted
    assert settings["User"] != ["root"]
    assert settings["NoNewPrivileges"] == ["yes"]


def test_sysusers_creates_the_user_the_unit_runs_as(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    sysusers = DEPLOY / "systemd" / "netmon.sysusers"
    result = run("systemd-sysusers", f"--root={tmp_path}", str(sysusers))
    assert result.returncode == 0, result.stderr
    users = {
        fields[0]: fields
        for fields in (
            line.split(":") for line in (tmp_path / "etc/passwd").read_text().splitlines()
        )
    }
    settings = unit_settings()
    user = users[settings["User"][0]]
    # No login shell, and the home is the state directory the unit creates.
    assert user[6] == "/usr/sbin/nologin"
    assert user[5] == f"/var/lib/{settings['StateDirectory'][0]}"


UNIT_USER, UNIT_GROUP = "nobody", "nogroup"  # stand-ins for `netmon`, not on this machine
# CapEff/CapBnd/CapAmb bits in /proc/PID/status (linux/capability.h).
CAPABILITY_BITS = {"CAP_NET_BIND_SERVICE": 10, "CAP_NET_RAW": 13}


def unit_sandbox() -> list[str]:
    """setpriv as the unit runs its commands: User=/Group= (stand-ins), supplementary groups
    dropped, the ambient capabilities and bounding set of the unit, NoNewPrivileges."""
    settings = unit_settings()

    def caps(key: str) -> str:
        names = " ".join(settings[key]).split()
        return ",".join(["-all", *(f"+{name.removeprefix('CAP_').lower()}" for name in names)])

    assert settings["NoNewPrivileges"] == ["yes"]
    return [
        require_program("setpriv"),
        f"--reuid={UNIT_USER}", f"--regid={UNIT_GROUP}", "--clear-groups",
        f"--inh-caps={caps('AmbientCapabilities')}",
        f"--ambient-caps={caps('AmbientCapabilities')}",
        f"--bounding-set={caps('CapabilityBoundingSet')}",
        "--no-new-privs", "--",
    ]  # fmt: skip


def free_privileged_udp_port() -> int:
    """The trap port, 162, unless something here listens on it: then another below 1024."""
    for port in (162, *range(1023, 512, -1)):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise AssertionError("no free UDP port below 1024")


@pytest.fixture
def unit_directories() -> Iterator[tuple[Path, Path]]:
    """(/etc/netmon, /var/lib/netmon) as the unit's install makes them: the config readable by
    the service's group only and not writable by it, the state directory its own. Outside
    pytest's private tmp, which the service's user could not enter."""
    with tempfile.TemporaryDirectory(prefix="netmon-unit-") as base:
        os.chmod(base, 0o755)  # noqa: S103 - the service's user must reach its directories
        etc, state = Path(base, "etc"), Path(base, "state")
        etc.mkdir(mode=0o750)
        state.mkdir(mode=0o750)
        os.chown(etc, 0, grp.getgrnam(UNIT_GROUP).gr_gid)
        os.chown(state, pwd.getpwnam(UNIT_USER).pw_uid, grp.getgrnam(UNIT_GROUP).gr_gid)
        yield etc, state


@pytest.mark.skipif(os.geteuid() != 0, reason="changing to the unit's user needs root")
def test_the_units_commands_run_and_reload_netmon_as_the_unit_does(
    unit_directories: tuple[Path, Path], netmon_for_nobody: Path
) -> None:
    """ExecStart's arguments (with a config of our own in place of /etc/netmon/config.yaml),
    run as an unprivileged user with only the unit's capabilities: netmon pings with raw ICMP,
    binds the trap receiver below 1024, keeps its default alert database in $STATE_DIRECTORY,
    and ExecReload's signal, sent as the unit sends it, reloads it instead of killing it."""
    settings = unit_settings()
    etc, state = unit_directories
    trap_port = free_privileged_udp_port()
    config = write_config(
        etc / "config.yaml",
        {
            "http": {"listen": "127.0.0.1:0"},
            "trap_receiver": {"listen": f"127.0.0.1:{trap_port}"},
            "defaults": {"icmp": {"interval": "200ms", "timeout": "150ms", "up_after": 1}},
            "targets": [{"id": "lo", "address": "127.0.0.1", "probes": ["icmp"]}],
        },
    )
    os.chown(config, 0, grp.getgrnam(UNIT_GROUP).gr_gid)
    config.chmod(0o640)
    argv = settings["ExecStart"][0].replace("/etc/netmon/config.yaml", str(config)).split()
    assert argv[0] == "/usr/local/bin/netmon"
    argv[0] = str(netmon_for_nobody)  # installed: the unit's user may not enter this checkout
    assert settings["WorkingDirectory"] == [f"/var/lib/{settings['StateDirectory'][0]}"]
    # What systemd gives a service: little of the caller's environment, and StateDirectory=.
    environment = {"PATH": os.environ["PATH"], "HOME": str(state), "STATE_DIRECTORY": str(state)}
    process = subprocess.Popen(
        [*unit_sandbox(), *argv],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, cwd=state, env=environment,
    )  # fmt: skip
    log: list[str] = []

    def read_log() -> None:  # a chatty netmon must never block on a full pipe
        assert process.stderr is not None
        for line in process.stderr:
            log.append(line)

    drain = threading.Thread(target=read_log, daemon=True)
    drain.start()

    def logged(pattern: str) -> re.Match[str] | None:
        if process.poll() is not None:
            raise AssertionError(f"netmon exited ({process.returncode}):\n{''.join(log)}")
        return next((m for line in list(log) if (m := re.search(pattern, line))), None)

    try:
        running = wait_until(lambda: logged(r"netmon running .*url=(\S+)"), timeout=20)
        url = running[1]
        status = dict(
            line.split(":", 1)
            for line in Path(f"/proc/{process.pid}/status").read_text().splitlines()
        )
        assert status["Uid"].split()[0] == str(pwd.getpwnam(UNIT_USER).pw_uid)
        assert status["Gid"].split()[0] == str(grp.getgrnam(UNIT_GROUP).gr_gid)
        assert status["Groups"].split() == []
        granted = sum(
            1 << CAPABILITY_BITS[name] for name in settings["AmbientCapabilities"][0].split()
        )
        for key in ("CapEff", "CapBnd", "CapAmb"):
            assert int(status[key], 16) == granted, (key, status[key])

        assert logged(r"ICMP sockets open .*mode=raw"), "".join(log)
        wait_until(
            lambda: metric_value(http_get(url + "/metrics")[2], "netmon_target_up", target="lo")
            == 1,
            timeout=15, what="netmon to ping 127.0.0.1",
        )  # fmt: skip
        assert logged(rf"SNMP trap receiver listening .*port={trap_port}\b"), "".join(log)
        database = state / "netmon-alerts.sqlite"
        assert database.is_file()
        assert database.stat().st_uid == pwd.getpwnam(UNIT_USER).pw_uid

        reload = settings["ExecReload"][0].replace("$MAINPID", str(process.pid)).split()
        result = subprocess.run(
            [*unit_sandbox(), *reload], env=environment, check=False, timeout=10
        )
        assert result.returncode == 0
        wait_until(
            lambda: (
                metric_value(
                    http_get(url + "/metrics")[2], "netmon_config_reloads_total", result="success"
                )
                == 1
            ),
            what="the reload to be counted",
        )
        assert process.poll() is None
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        drain.join(timeout=5)


# --- container -------------------------------------------------------------------------------

DOCKERFILE = ROOT / "Dockerfile"


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", path.read_text())
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def instruction(name: str) -> list[str]:
    return [arguments for found, arguments in instructions() if found == name]


def healthcheck_command() -> list[str]:
    (healthcheck,) = instruction("HEALTHCHECK")
    command = json.loads(healthcheck.split("CMD", 1)[1])
    assert isinstance(command, list)
    return [str(part) for part in command]


def test_the_image_exposes_netmons_default_ports() -> None:
    exposed = " ".join(instruction("EXPOSE")).split()
    http_port = parse_listen(HttpConfig().listen)[1]
    trap_port = parse_listen(TrapSettings().listen)[1]
    assert http_port == DEFAULT_PORT
    assert set(exposed) == {str(http_port), f"{trap_port}/udp"}
    url = re.search(r"http://[^'\"]+", " ".join(healthcheck_command()))
    assert url is not None
    parsed = urllib.parse.urlsplit(url[0])
    assert (parsed.hostname, parsed.port, parsed.path) == ("127.0.0.1", http_port, "/-/healthy")


def test_the_healthcheck_passes_on_a_running_netmon_and_fails_without(tmp_path: Path) -> None:
    """The image's HEALTHCHECK command, run here against a real netmon on a free port."""
    config = write_config(
        tmp_path / "config.yaml", {"alerting": {"database": str(tmp_path / "a.sqlite")}}
    )
    netmon = NetmonProcess(config)
    try:
        port = urllib.parse.urlsplit(netmon.url).port
        command = [part.replace(f":{DEFAULT_PORT}/", f":{port}/") for part in healthcheck_command()]
        command[0] = sys.executable  # `python` in the image
        assert subprocess.run(command, capture_output=True, check=False, timeout=10).returncode == 0
    finally:
        netmon.stop()
    assert subprocess.run(command, capture_output=True, check=False, timeout=10).returncode != 0


def test_the_image_runs_as_a_user_and_reads_the_documented_config() -> None:
    assert instruction("USER")[-1] not in {"root", "0"}
    assert instruction("FROM")[-1] == "python:3.11-slim"
    assert json.loads(instruction("CMD")[-1]) == ["run", "--config", "/etc/netmon/config.yaml"]
    assert json.loads(instruction("ENTRYPOINT")[-1]) == ["netmon"]


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` out of the build context (last matching rule wins)."""
    ignored = False
    for rule in (ROOT / ".dockerignore").read_text().splitlines():
        rule = rule.strip()
        if not rule or rule.startswith("#"):
            continue
        negate, pattern = rule.startswith("!"), rule.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path, pattern.removeprefix("**/")):
            ignored = not negate
    return ignored


def test_the_image_builds_from_every_package_pyproject_ships() -> None:
    """A package pyproject installs but the Dockerfile does not copy (or .dockerignore hides)
    fails at `pip wheel`, or worse, at `netmon run` in production."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    copied = {
        source
        for arguments in instruction("COPY")
        if not arguments.startswith("--from")
        for source in arguments.split()[:-1]
    }
    packages = {
        path.name
        for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
        for path in ROOT.glob(pattern)
        if (path / "__init__.py").exists()
    }
    needed = packages | {"pyproject.toml", pyproject["project"]["readme"]}
    assert needed <= copied, needed - copied
    assert not [path for path in needed if dockerignored(path)]
    assert dockerignored("tests")
    assert dockerignored(".venv")


# --- compose ---------------------------------------------------------------------------------

COMPOSE = DEPLOY / "compose.yaml"


def services() -> dict[str, dict[str, Any]]:
    return dict(load(COMPOSE)["services"])


def mounts(service: str) -> dict[str, str]:
    """Container path -> source (host path relative to deploy/, or a volume name)."""
    found = {}
    for volume in services()[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        found[target] = source
    return found


def host_path(service: str, container_path: str) -> Path:
    """The file of this repository a service sees at `container_path`."""
    for target, source in sorted(mounts(service).items(), key=lambda item: -len(item[0])):
        if container_path == target or container_path.startswith(target + "/"):
            return (DEPLOY / source / container_path[len(target) :].lstrip("/")).resolve()
    raise AssertionError(f"{service} does not mount {container_path}")


def flag(service: str, name: str) -> str:
    for argument in services()[service]["command"]:
        if argument.startswith(f"--{name}="):
            return str(argument.split("=", 1)[1])
    raise AssertionError(f"{service} has no --{name}")


def host_port(url_or_address: str) -> tuple[str, int]:
    parsed = urllib.parse.urlsplit(
        url_or_address if "//" in url_or_address else f"//{url_or_address}"
    )
    assert parsed.hostname is not None, url_or_address
    assert parsed.port is not None, url_or_address
    return parsed.hostname, parsed.port


NETMON_CONFIG = host_path("netmon", "/etc/netmon/config.yaml")


def test_every_file_compose_mounts_or_builds_from_exists() -> None:
    declared_volumes = set(load(COMPOSE)["volumes"])
    assert {"netmon", "prometheus", "alertmanager", "grafana"} <= set(services())
    files = 0
    for name, service in services().items():
        for target, source in mounts(name).items():
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} (for {target})"
                files += 1
            else:
                assert source in declared_volumes, f"{name}: volume {source}"
        if "build" in service:
            context = DEPLOY / service["build"]["context"]
            assert (context / service["build"]["dockerfile"]).is_file()
    assert files, "no service mounts a file of deploy/"


COMPOSE_VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")
API_TOKEN = "a-token-for-the-tests-0123456789"  # noqa: S105 - made up, 16+ characters


def compose_environment(shell: dict[str, str]) -> dict[str, str]:
    """netmon's environment as compose sets it from the `shell`'s variables: ${VAR:-default}
    falls back to its default; without VAR, ${VAR:?message} stops compose with the message."""

    def substitute(match: re.Match[str]) -> str:
        variable, operator, rest = match.groups()
        if variable in shell:
            return shell[variable]
        if operator == "-":
            return str(rest)
        raise AssertionError(f"compose: {variable}: {rest}")

    return {
        name: COMPOSE_VARIABLE.sub(substitute, str(value))
        for name, value in services()["netmon"].get("environment", {}).items()
    }


def validate(config: Path, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*netmon_command(), "validate", "--config", str(config)],
        capture_output=True, text=True, check=False, timeout=60,
        env={**os.environ, **environment},
    )  # fmt: skip


def test_netmon_in_compose_validates_with_the_environment_compose_gives_it() -> None:
    result = validate(NETMON_CONFIG, compose_environment({"NETMON_API_TOKEN": API_TOKEN}))
    assert result.returncode == 0, result.stdout + result.stderr
    # The config the image's CMD reads is the one mounted.
    assert json.loads(instruction("CMD")[-1])[-1] == "/etc/netmon/config.yaml"


def test_compose_gives_netmon_an_api_token_it_requires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside a container no request comes from loopback: without http.token every change
    through the API (checks, silences) would be refused. The token comes from the
    environment, and compose will not start without it."""
    http = load(NETMON_CONFIG)["http"]
    assert http["token"] == {"env": "NETMON_API_TOKEN"}
    with pytest.raises(AssertionError, match="NETMON_API_TOKEN: set NETMON_API_TOKEN"):
        compose_environment({})
    short = validate(NETMON_CONFIG, compose_environment({"NETMON_API_TOKEN": "too-short"}))
    assert short.returncode != 0
    assert "http.token: the token must be at least 16 characters" in short.stdout + short.stderr

    # The sample's http section on a running netmon: a check starts with the token only.
    monkeypatch.setenv("NETMON_API_TOKEN", API_TOKEN)
    config = write_config(
        tmp_path / "config.yaml",
        {
            "http": {**http, "listen": "127.0.0.1:0"},
            "alerting": {"database": str(tmp_path / "a.sqlite")},
            "targets": [{"id": "lo", "address": "127.0.0.1"}],
        },
    )
    netmon = NetmonProcess(config)
    try:
        answers = [
            post(netmon.url + "/api/v1/checks", {"targets": ["lo"]}, headers)
            for headers in ({}, {"Authorization": f"Bearer {API_TOKEN}"})
        ]
    finally:
        netmon.stop()
    assert answers == [401, 202]


def post(url: str, body: dict[str, Any], headers: dict[str, str]) -> int:
    request = urllib.request.Request(  # noqa: S310
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_netmons_alert_database_is_on_a_writable_volume() -> None:
    """The container's root is read-only: an alert database anywhere else stops netmon."""
    assert services()["netmon"]["read_only"] is True
    database = PurePosixPath(load(NETMON_CONFIG)["alerting"]["database"])
    volume = mounts("netmon")[str(database.parent)]
    assert volume in load(COMPOSE)["volumes"]
    (image_volume,) = instruction("VOLUME")
    assert image_volume == str(database.parent)
    assert unit_settings()["StateDirectory"] == [database.parent.name]
    # A config of one's own that leaves alerting.database at its default lands there too.
    assert f"STATE_DIRECTORY={image_volume}" in instruction("ENV")


def test_netmon_publishes_to_the_compose_broker_and_alertmanager() -> None:
    config = load(NETMON_CONFIG)["alerting"]
    mosquitto_conf = host_path("mosquitto", "/mosquitto/config/mosquitto.conf").read_text()
    listeners = [
        int(line.split()[1]) for line in mosquitto_conf.splitlines() if line.startswith("listener")
    ]
    assert (config["mqtt"]["host"], config["mqtt"]["port"]) in {
        ("mosquitto", port) for port in listeners
    }
    assert services()["mosquitto"]["image"].startswith("eclipse-mosquitto:")
    assert config["alertmanager"]["urls"]
    for url in config["alertmanager"]["urls"]:
        assert host_port(url) == ("alertmanager", ALERTMANAGER_PORT)


ALERTMANAGER_PORT = 9093  # Alertmanager's default --web.listen-address, which compose keeps
PROMETHEUS_PORT = 9090


def test_prometheus_scrapes_netmon_and_alerts_to_alertmanager_by_service_name() -> None:
    config_path = host_path("prometheus", flag("prometheus", "config.file"))
    assert config_path == PROMETHEUS / "prometheus.yml"
    config = load(config_path)
    netmon_port = parse_listen(load(NETMON_CONFIG)["http"]["listen"])[1]
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "netmon"]
    targets = [host_port(t) for group in job["static_configs"] for t in group["targets"]]
    assert targets == [("netmon", netmon_port)]
    managers = [
        host_port(t)
        for manager in config["alerting"]["alertmanagers"]
        for group in manager["static_configs"]
        for t in group["targets"]
    ]
    assert managers == [("alertmanager", ALERTMANAGER_PORT)]
    assert (
        host_path("alertmanager", flag("alertmanager", "config.file"))
        == DEPLOY / "alertmanager.yml"
    )
    # The rule files, relative to the config, are inside the mounted directory.
    assert config["rule_files"]
    for rule_file in config["rule_files"]:
        assert host_path("prometheus", f"/etc/prometheus/{rule_file}").is_file()


def test_grafana_reads_the_compose_prometheus_and_the_generated_dashboards() -> None:
    provisioning = host_path("grafana", "/etc/grafana/provisioning")
    datasource, long_term = load(provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert (datasource["type"], datasource["uid"]) == ("prometheus", "prometheus")
    assert datasource["isDefault"] is True
    assert host_port(datasource["url"]) == ("prometheus", PROMETHEUS_PORT)
    # VictoriaMetrics answers the same PromQL: the dashboards' datasource variable offers it.
    assert (long_term["type"], long_term["uid"]) == ("prometheus", "victoriametrics")
    assert long_term["isDefault"] is False
    assert host_port(long_term["url"]) == ("victoriametrics", 8428)
    (provider,) = load(provisioning / "dashboards" / "netmon.yml")["providers"]
    assert provider["folder"] == "netmon"
    assert host_path("grafana", provider["options"]["path"]) == ROOT / "dashboards" / "json"


def datasource_refs(node: object) -> list[dict[str, str]]:
    """Every `datasource` object in a dashboard's JSON, panels, targets and variables alike."""
    if isinstance(node, dict):
        own = [node["datasource"]] if isinstance(node.get("datasource"), dict) else []
        return own + [ref for value in node.values() for ref in datasource_refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in datasource_refs(value)]
    return []


def test_the_generated_dashboards_work_with_the_provisioned_prometheus() -> None:
    """dashboards/json, as Grafana gets it from the compose mount: every netmon:* series a
    panel asks for is recorded by deploy/prometheus/rules, and every query goes to the
    provisioned datasource (by the datasource variable, or its uid)."""
    recorded = {rule["record"] for rule in rules(RULES / "netmon-recording.yml")}
    provisioning = host_path("grafana", "/etc/grafana/provisioning")
    datasource, _long_term = load(provisioning / "datasources" / "prometheus.yml")["datasources"]
    dashboards = sorted((ROOT / "dashboards" / "json").glob("*.json"))
    assert dashboards
    for path in dashboards:
        used = set(re.findall(r"netmon:[a-z0-9_]+:[a-z0-9_]+", path.read_text()))
        assert used <= recorded, f"{path.name}: {used - recorded}"
        dashboard = json.loads(path.read_text())
        refs = datasource_refs(dashboard)
        assert refs, path.name
        for ref in refs:
            assert ref["type"] == datasource["type"], f"{path.name}: {ref}"
            assert ref["uid"] in {"${datasource}", datasource["uid"]}, f"{path.name}: {ref}"
        variables = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
        assert [v["query"] for v in variables] == [datasource["type"]], path.name


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-shards.yml"])
def test_prometheus_writes_every_sample_to_the_compose_victoriametrics(config: str) -> None:
    (remote,) = load(PROMETHEUS / config)["remote_write"]
    assert host_port(remote["url"]) == ("victoriametrics", 8428)
    assert urllib.parse.urlsplit(remote["url"]).path == "/api/v1/write"
    victoria = services()["victoriametrics"]
    # As long as the availability reports look back (issue 19's default retention).
    assert "-retentionPeriod=400d" in victoria["command"]
    assert "victoriametrics" in services()["prometheus"]["depends_on"]
