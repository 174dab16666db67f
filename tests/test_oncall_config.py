"""The on-call config as people write it: the README's complete example loads, a step that
names a channel that does not exist is refused with its place, and `netmon oncall` says who is
on call now and next."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from netmon.cli import main
from netmon.config.errors import ConfigError
from netmon.config.loader import load_data

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    section = README.read_text(encoding="utf-8").split("### On call: escalation, rotas", 1)[1]
    found = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert found is not None
    text = found.group(1).replace("/etc/netmon/", f"{tmp_path}/")
    (tmp_path / "telegram-token").write_text("123456789:" + "A" * 35 + "\n")
    (tmp_path / "esms-api-key").write_text("api\n")
    (tmp_path / "esms-secret").write_text("secret\n")
    monkeypatch.setenv("NETMON_SMTP_PASSWORD", "smtp-password")
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def test_the_readmes_complete_example_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    oncall = load_data({**readme_example(tmp_path, monkeypatch), "targets": []}).config.oncall
    assert oncall is not None
    assert oncall.channel_kinds() == {"telegram": "telegram", "mail": "email", "sms": "gateway"}
    assert [policy.name for policy in oncall.policies] == ["outages", "warnings"]
    assert oncall.rotas["noc"].people == ["tuan", "lan"]


def test_a_step_on_a_channel_that_does_not_exist_names_its_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = readme_example(tmp_path, monkeypatch)
    oncall = data["oncall"]
    assert isinstance(oncall, dict)
    oncall["policies"][0]["steps"][1]["notify"][1]["channel"] = "e-mail"
    with pytest.raises(ConfigError) as caught:
        load_data({**data, "targets": []})
    assert "policies.0.steps.1.notify.1.channel: no channel 'e-mail'" in str(caught.value)


def test_netmon_oncall_says_who_is_on_call_now_and_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "netmon.yaml"
    config.write_text(
        yaml.safe_dump(
            {**readme_example(tmp_path, monkeypatch), "targets": []}, allow_unicode=True
        ),
        encoding="utf-8",
    )
    assert main(["oncall", "--config", str(config), "--at", "2027-02-16T10:00"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # Lan's week, but Tuấn covers the first days of Tết for her (the override).
    assert (
        lines[1] == "noc: now Nguyễn Văn Tuấn (tuan), Mon 15/02 08:00 - Thu 18/02 08:00, override"
    )
    assert lines[2].strip() == "next Trần Thị Lan (lan), Thu 18/02 08:00 - Mon 22/02 08:00"
