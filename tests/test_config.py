"""Config validation: every broken config names its field with the exact message."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from collectors import registry
from netmon.config.errors import ConfigError
from netmon.config.loader import load_data, load_file, parse_yaml
from netmon.config.schema import parse_listen
from tests.helpers import netmon_command

GOOD_TARGET = "targets:\n  - {id: ep-1, address: 127.0.0.1}\n"

BAD_CONFIGS = [
    (
        "address not an IP",
        "targets:\n  - {id: ep-1, address: 300.1.1.1}\n",
        ["targets[0].address: not an IP address or hostname"],
    ),
    (
        "address with a space",
        "targets:\n  - {id: ep-1, address: 127.0.0.1}\n  - {id: ep-2, address: 'a b'}\n",
        ["targets[1].address: not an IP address or hostname"],
    ),
    (
        "typo in a target key",
        "targets:\n  - {id: ep-1, adress: 127.0.0.1}\n",
        ["targets[0].address: required", "targets[0].adress: unknown key (check the spelling)"],
    ),
    (
        "typo in a top-level key",
        "target:\n  - {id: ep-1, address: 127.0.0.1}\n",
        ["target: unknown key (check the spelling)"],
    ),
    (
        "duplicate id",
        "targets:\n  - {id: a, address: 127.0.0.1}\n  - {id: b, address: 127.0.0.2}\n"
        "  - {id: a, address: 127.0.0.3}\n",
        ["targets[2].id: duplicate id 'a' (first used by targets[0])"],
    ),
    (
        "id unusable as a label value and topic",
        "targets:\n  - {id: 'ep/1', address: 127.0.0.1}\n",
        [
            "targets[0].id: not usable as an id: use letters, digits, '.', '_' and '-', starting "
            "with a letter or digit, at most 128 characters (ids become label values and MQTT "
            "topic levels)"
        ],
    ),
    (
        "unknown kind",
        "targets:\n  - {id: r1, address: 127.0.0.1, kind: rooter}\n",
        [
            "targets[0].kind: must be one of 'endpoint', 'mcu', 'router', 'switch', 'olt', "
            "'cpe', 'firewall', 'server' or 'service'"
        ],
    ),
    (
        "unknown probe",
        "targets:\n  - {id: ep-1, address: 127.0.0.1, probes: [icmpp]}\n",
        [f"targets[0].probes.icmpp: unknown probe; known: {', '.join(registry.names())}"],
    ),
    (
        "bad duration in defaults",
        "defaults:\n  icmp: {interval: fast}\n" + GOOD_TARGET,
        ["defaults.icmp.interval: not a duration: 'fast' (examples: 500ms, 2s, 5m, 1h)"],
    ),
    (
        "round longer than the interval",
        "defaults:\n  icmp: {interval: 1s, count: 10, spacing: 200ms}\n" + GOOD_TARGET,
        [
            "defaults.icmp: a round of 10 echoes lasts up to 2.6s (timeout + (count-1) x "
            "spacing); it must be shorter than the interval 1s"
        ],
    ),
    (
        "timeout as long as the interval",
        "defaults:\n  icmp: {interval: 1s, timeout: 1s}\n" + GOOD_TARGET,
        [
            "defaults.icmp: a round of 1 echoes lasts up to 1s (timeout + (count-1) x "
            "spacing); it must be shorter than the interval 1s"
        ],
    ),
    (
        "probe list holding a mapping",
        "targets:\n  - {id: ep-1, address: 127.0.0.1, probes: [{icmp: {timeout: 500ms}}]}\n",
        [
            "targets[0].probes: expected a list of probe names ([icmp]) or a mapping of probe "
            "name to settings ({icmp: {timeout: 500ms}})"
        ],
    ),
    (
        "unknown DSCP name on one target",
        "targets:\n  - id: ep-1\n    address: 127.0.0.1\n    probes: {icmp: {dscp: AF99}}\n",
        [
            "targets[0].probes.icmp.dscp: unknown DSCP name 'AF99' (use 0-63 or a name such as "
            "AF41, EF, CS5)"
        ],
    ),
    (
        "down_after zero",
        "targets:\n  - id: ep-1\n    address: 127.0.0.1\n    probes: {icmp: {down_after: 0}}\n",
        ["targets[0].probes.icmp.down_after: Input should be greater than or equal to 1"],
    ),
    (
        "unknown probe setting",
        "defaults:\n  icmp: {intervall: 5s}\n" + GOOD_TARGET,
        ["defaults.icmp.intervall: unknown key (check the spelling)"],
    ),
    (
        "reserved label",
        "targets:\n  - {id: ep-1, address: 127.0.0.1, labels: {site: x}}\n",
        ["targets[0].labels.site: label name 'site' is reserved (netmon sets it)"],
    ),
    (
        "label name not usable by Prometheus",
        "targets:\n  - {id: ep-1, address: 127.0.0.1, labels: {vendor-name: x}}\n",
        ["targets[0].labels.vendor-name: not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)"],
    ),
    (
        "bad listen address",
        "http: {listen: localhost}\n" + GOOD_TARGET,
        ["http.listen: expected HOST:PORT, e.g. 127.0.0.1:9842 or [::]:9842"],
    ),
    (
        "loss threshold above 1",
        "thresholds: {loss_bad: 5}\n" + GOOD_TARGET,
        ["thresholds.loss_bad: Input should be less than or equal to 1"],
    ),
    (
        "a rule of the defaults broken again by every target that uses the probe as it is",
        "defaults:\n  icmp: {interval: 1s, timeout: 1s}\n"
        "targets:\n  - {id: ep-1, address: 127.0.0.1, probes: [icmp]}\n",
        [
            "defaults.icmp: a round of 1 echoes lasts up to 1s (timeout + (count-1) x "
            "spacing); it must be shorter than the interval 1s",
            "targets[0].probes.icmp: a round of 1 echoes lasts up to 1s (timeout + (count-1) x "
            "spacing); it must be shorter than the interval 1s",
        ],
    ),
    (
        "a target not blamed for a default it does not set",
        "defaults:\n  tcp: {port: 0}\n"
        "targets:\n  - id: ep-1\n    address: 127.0.0.1\n    probes: {tcp: {interval: 60s}}\n",
        ["defaults.tcp.port: Input should be greater than or equal to 1"],
    ),
    (
        "SNMP target without a credential",
        "targets:\n  - {id: r1, address: 127.0.0.1, kind: router, probes: [snmp]}\n",
        ["targets[0].probes.snmp.credential: required: the name of an entry in credentials"],
    ),
    (
        "not a mapping",
        "- just\n- a list\n",
        ["the config must be a mapping of keys to values"],
    ),
    (
        # Valid YAML, and it would pass every other check, then fail in the alert database.
        "a lone surrogate in a name",
        'targets:\n  - {id: ep-1, address: 127.0.0.1, name: "Room \\udc80"}\n',
        ["targets[0].name: text with an unpaired surrogate (not valid Unicode)"],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [case[1:] for case in BAD_CONFIGS], ids=[case[0] for case in BAD_CONFIGS]
)
def test_bad_config_names_the_field(text: str, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        load_data(parse_yaml(text, "config.yaml"))
    assert sorted(str(problem) for problem in caught.value.problems) == sorted(expected)


def test_every_problem_is_reported_at_once() -> None:
    text = textwrap.dedent(
        """\
        instanse: x
        targets:
          - {id: a, address: 300.0.0.1}
          - {id: a, address: 127.0.0.1, kind: rooter}
        """
    )
    with pytest.raises(ConfigError) as caught:
        load_data(parse_yaml(text, "c.yaml"))
    paths = sorted(problem.path for problem in caught.value.problems)
    assert paths == ["instanse", "targets[0].address", "targets[1].id", "targets[1].kind"]


def test_duplicate_yaml_key_is_an_error() -> None:
    text = "instance: a\ntargets: []\ninstance: b\n"
    with pytest.raises(ConfigError) as caught:
        parse_yaml(text, "c.yaml")
    assert str(caught.value) == (
        "c.yaml: YAML error at line 3, column 1: duplicate key 'instance' (first on line 1)"
    )


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("? [a]\n: 1\n", "line 1, column 3"),
        ("targets:\n  - id: a\n    ? {b: 1}\n    : 2\n", "line 3, column 7"),
    ],
)
def test_a_list_or_mapping_as_a_key_is_a_clear_error(tmp_path: Path, text: str, where: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(text, encoding="utf-8")
    result = subprocess.run(
        [*netmon_command(), "validate", "--config", str(config)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == (
        f"{config}: YAML error at {where}: a key must be a name or other single value, "
        "not a list or mapping"
    )


def test_yaml_syntax_error_gives_the_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_yaml("targets:\n  - {id: a, address: [\n", "c.yaml")
    assert str(caught.value).startswith("c.yaml: YAML error at line 3")


def test_valid_config_resolves_defaults_and_overrides() -> None:
    text = textwrap.dedent(
        """\
        instance: thanh-hoa
        defaults:
          icmp: {interval: 2s, timeout: 500ms, dscp: AF41}
        targets:
          - {id: ep-1, address: 127.0.0.1, name: "Sở Văn hóa, Thể thao và Du lịch"}
          - id: core-1
            address: core1.example.net
            kind: router
            probes: {icmp: {count: 3, spacing: 100ms, dscp: EF}}
        """
    )
    inventory = load_data(parse_yaml(text, "c.yaml"))
    endpoint = inventory.targets["ep-1"].probe("icmp")
    router = inventory.targets["core-1"].probe("icmp")
    assert endpoint is not None
    assert router is not None
    assert (endpoint.interval, endpoint.timeout, endpoint.dscp) == (2.0, 0.5, 34)  # type: ignore[attr-defined]
    assert (router.interval, router.count, router.spacing, router.dscp) == (2.0, 3, 0.1, 46)  # type: ignore[attr-defined]
    assert inventory.targets["ep-1"].name == "Sở Văn hóa, Thể thao và Du lịch"
    assert inventory.summary() == (
        "instance thanh-hoa: 2 targets (1 endpoint, 1 router); probes: icmp x2"
    )


def test_each_probe_setting_is_validated_once(monkeypatch: pytest.MonkeyPatch) -> None:
    validated: list[object] = []
    model = registry.settings_model("icmp")
    validate = model.model_validate

    def counting(data: object) -> object:
        validated.append(data)
        return validate(data)

    monkeypatch.setattr(model, "model_validate", counting)
    text = textwrap.dedent(
        """\
        defaults:
          icmp: {interval: 2s}
        targets:
          - {id: a, address: 127.0.0.1}
          - {id: b, address: 127.0.0.2, probes: [icmp]}
          - {id: c, address: 127.0.0.3, probes: {icmp: {count: 3, spacing: 100ms}}}
        """
    )
    inventory = load_data(parse_yaml(text, "c.yaml"))
    # The defaults once, c's override once; a and b use the defaults' settings as they are.
    assert validated == [{"interval": "2s"}, {"interval": "2s", "count": 3, "spacing": "100ms"}]
    assert inventory.targets["a"].probe("icmp") is inventory.targets["b"].probe("icmp")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9842", ("127.0.0.1", 9842)),
        ("[::1]:9842", ("::1", 9842)),
        (":9842", ("0.0.0.0", 9842)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


def test_validate_command_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD_TARGET)
    bad = tmp_path / "bad.yaml"
    bad.write_text("targets:\n  - {id: ep-1, address: 300.1.1.1}\n")

    result = subprocess.run(
        [*netmon_command(), "validate", "--config", str(good)], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert (
        result.stdout.strip()
        == f"{good}: OK, instance netmon: 1 targets (1 endpoint); probes: icmp x1"
    )

    result = subprocess.run(
        [*netmon_command(), "validate", "--config", str(bad)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "targets[0].address: not an IP address or hostname" in result.stderr.splitlines()


def test_run_refuses_a_broken_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("targets:\n  - {id: ep-1, address: 127.0.0.1, probes: {icmp: {count: 0}}}\n")
    result = subprocess.run(
        [*netmon_command(), "run", "--config", str(bad)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert (
        "targets[0].probes.icmp.count: Input should be greater than or equal to 1" in result.stderr
    )


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_file(tmp_path / "nope.yaml")
    assert str(caught.value).startswith(f"{tmp_path / 'nope.yaml'}: cannot read:")


def test_the_config_is_read_without_alerting_or_any_transport() -> None:
    # `netmon validate` and `netmon dashboards build` load these pieces only; aiohttp, aiomqtt,
    # pysnmp and cryptography took most of a second to import, and alerting pulls them in.
    code = (
        "import sys, netmon.config.loader, netmon.config.rules, netmon.config.thresholds\n"
        "heavy = {'aiohttp', 'aiomqtt', 'paho', 'pysnmp', 'cryptography'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy"
        " or m.startswith('netmon.alerting')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (result.returncode, result.stdout.strip()) == (0, "[]"), result.stderr


def test_every_probe_in_the_registry_loads_its_collector() -> None:
    for name in registry.names():
        collector = registry.collector_class(name)
        assert (collector.name, collector.settings_model) == (name, registry.settings_model(name))


# Found by the fuzz campaign (tests/test_fuzz.py): each was an exception other than
# ConfigError (a crash of `netmon validate`, or of a reload).
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0: !!timestamp", "a bad tagged value"),
        ("0: !!int 0x", "a bad tagged value"),
        ("[" * 20_000, "nested too deeply"),
    ],
)
def test_a_yaml_value_that_cannot_be_built_is_a_config_error(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_yaml(text, "config.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("targets: " + "[" * 200 + "]" * 200, "nested deeper than 32 levels"),
        ("a: &x [*x]", "nested deeper than 32 levels"),  # a list that holds itself
        (
            "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
            + "".join(
                f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n"
                for i in range(6)
            ),
            "more than 1000000 values",
        ),  # billion laughs
    ],
)
def test_config_data_too_deep_or_too_big_is_refused_before_validation(
    text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_data(parse_yaml(text, "config.yaml"))


ROOMS_CONFIG = """\
credentials:
  codecs: {user: netmon, password: secret-pw}
  community: {community: public}
groups:
  district:
    vendor: cisco
    registrar: kamailio
    probes: {xapi: {interval: 60s}}
defaults:
  xapi: {credential: codecs}
  poly: {credential: codecs}
targets:
  - id: kamailio
    address: 127.0.0.1
    kind: service
    probes: {kamailio: {}}
  - {id: ep-1, address: 127.0.0.1, group: district, aor: "sip:ep-1@vc.example"}
  - id: ep-2
    address: 127.0.0.2
    group: district
    vendor: poly
    probes: {xapi: {timeout: 2s}}
  - {id: ep-3, address: 127.0.0.3, vendor: sip, registrar: kamailio}
"""


def test_groups_give_defaults_and_a_vendor_its_status_probe() -> None:
    inventory = load_data(parse_yaml(ROOMS_CONFIG, "c.yaml"))
    one, two, three = (inventory.targets[f"ep-{n}"] for n in (1, 2, 3))
    # ep-1: everything from its group; its xapi probe from the group over the defaults.
    assert (one.vendor, one.registrar, one.aor) == ("cisco", "kamailio", "sip:ep-1@vc.example")
    assert [name for name, _ in one.probes] == ["icmp", "xapi"]
    xapi = one.probe("xapi")
    assert xapi is not None
    assert (xapi.interval, xapi.credential) == (60.0, "codecs")  # type: ignore[attr-defined]
    # ep-2: its own vendor wins and adds poly; its own probes (no icmp: they list what it
    # runs) merge with the group's, and its xapi settings over the group's.
    assert two.vendor == "poly"
    assert [name for name, _ in two.probes] == ["xapi", "poly"]
    assert (two.probe("xapi").interval, two.probe("xapi").timeout) == (60.0, 2.0)  # type: ignore[union-attr]
    # ep-3: a plain SIP room: no API probe, its AoR defaults to its id.
    assert ([name for name, _ in three.probes], three.aor) == (["icmp"], "ep-3")
    assert "secret-pw" not in repr(inventory)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            (
                "defaults:\n  xapi: {credential: codecs}",
                "defaults:\n  xapi: {credential: community}",
            ),
            "defaults.xapi.credential: credential 'community' is an snmp credential; "
            "xapi needs api",
        ),
        (
            ("vendor: sip, registrar: kamailio}", "vendor: sip, registrar: ep-1}"),
            "targets[3].registrar: 'ep-1' is not a registrar (a target with a registrar probe "
            "such as kamailio; registrars: kamailio)",
        ),
        (
            ("    vendor: cisco\n", "    vendor: huawei\n"),
            "groups.district.vendor: must be one of 'cisco', 'poly', 'sip' or 'other'",
        ),
        (
            ("  xapi: {credential: codecs}\n", ""),
            "targets[1].probes.xapi.credential: required: the name of an entry in credentials "
            "(user, password)",
        ),
    ],
    ids=["snmp credential for a codec", "not a registrar", "unknown vendor", "no credential"],
)
def test_room_status_config_mistakes_name_the_field(change: tuple[str, str], expected: str) -> None:
    text = ROOMS_CONFIG.replace(*change)
    assert text != ROOMS_CONFIG
    with pytest.raises(ConfigError) as caught:
        load_data(parse_yaml(text, "c.yaml"))
    assert expected in [str(problem) for problem in caught.value.problems]
