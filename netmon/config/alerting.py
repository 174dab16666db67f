"""The `alerting:` section of the config: rules, trap mapping, silences, flapping, topology, sinks.

Schema only, with the rules' resolution (defaults merged with the file's overrides); the alert
engine, its API and the sinks take these models as they are. It must not import alerting or a
transport.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from netmon.config.rules import FlappingConfig, Rule, TopologyConfig, TrapRule, default_rules
from netmon.config.sinks import AlertmanagerSettings, MqttSettings, WebhookSettings
from netmon.config.thresholds import Thresholds

# The languages alert summaries are written in (netmon.alerting.templates has the texts).
Language = Literal["en", "vi"]
MatcherName = Literal["target", "group", "district", "kind", "site", "alertname", "severity"]


class Silence(BaseModel):
    """A maintenance window: alerts whose labels match every matcher (globs) are not sent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = ""
    matchers: dict[MatcherName, str] = Field(min_length=1)
    starts_at: AwareDatetime | None = None
    ends_at_time: AwareDatetime = Field(alias="ends_at")
    comment: str = ""
    created_by: str = ""
    maintenance: bool = Field(
        default=False,
        description="planned work: availability reports exclude the matched targets' time in "
        "it (by its target, district, group, kind and site matchers)",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Silence:
        if self.starts_at is not None and self.starts_at >= self.ends_at_time:
            raise ValueError("ends_at must be after starts_at")
        if self.maintenance and self.starts_at is None:
            raise ValueError("a maintenance silence needs starts_at (reports exclude from then)")
        if not self.id:
            # Without the flag when it is off: silences written before it keep their ids.
            unflagged = {"maintenance"} if not self.maintenance else None
            text = self.model_dump_json(exclude=unflagged)
            digest = hashlib.sha256(text.encode()).hexdigest()[:12]
            object.__setattr__(self, "id", digest)
        return self

    @property
    def ends_at(self) -> float:
        return self.ends_at_time.timestamp()

    def active(self, now: float) -> bool:
        starts = self.starts_at.timestamp() if self.starts_at is not None else float("-inf")
        return starts <= now < self.ends_at

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(
            fnmatch.fnmatchcase(labels.get(name, ""), pattern)
            for name, pattern in self.matchers.items()
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchers": dict(self.matchers),
            "starts_at": self.starts_at.isoformat() if self.starts_at else None,
            "ends_at": self.ends_at_time.isoformat(),
            "comment": self.comment,
            "created_by": self.created_by,
            "maintenance": self.maintenance,
        }


class AlertingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    enabled: bool = True
    language: Language = "en"
    database: str = Field(
        default="netmon-alerts.sqlite",
        description="alert state and outbox; relative paths are in $STATE_DIRECTORY when "
        "systemd sets it (StateDirectory=), else next to the config file",
    )
    rules: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="overrides of the default rules, and new rules"
    )
    trap_alerts: dict[str, TrapRule] = Field(
        default_factory=dict, description="trap OID or name -> alert (vendor traps)"
    )
    flapping: FlappingConfig = Field(default_factory=FlappingConfig)
    topology: TopologyConfig = Field(default_factory=TopologyConfig)
    silences: list[Silence] = Field(default_factory=list)
    status_interval: float = Field(default=30.0, gt=0, description="MQTT status refresh")
    mqtt: MqttSettings | None = None
    alertmanager: AlertmanagerSettings | None = None
    webhooks: list[WebhookSettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _webhook_names_unique(self) -> AlertingConfig:
        names = [hook.name for hook in self.webhooks]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"webhooks need distinct names; repeated: {', '.join(duplicates)}")
        return self

    def static_silences(self) -> list[Silence]:
        return [s for s in self.silences if s.ends_at > dt.datetime.now(dt.UTC).timestamp()]


def resolve_rules(
    config: AlertingConfig, thresholds: Thresholds
) -> tuple[dict[str, Rule], list[tuple[str, str]]]:
    """The default rules with the config's overrides merged in, and new rules added.

    Returns the rules and (path, message) problems, paths relative to `alerting.rules`.
    """
    raw = default_rules(thresholds)
    problems: list[tuple[str, str]] = []
    rules: dict[str, Rule] = {}
    for name in sorted(set(raw) | set(config.rules)):
        override = config.rules.get(name) or {}
        if not isinstance(override, dict):
            problems.append((name, "expected a mapping of rule settings"))
            continue
        merged = {**raw.get(name, {}), **override}
        if not name.replace("_", "").isalnum() or not name[0].isalpha():
            problems.append((name, "a rule name is an alertname: letters, digits and _"))
            continue
        try:
            rules[name] = Rule.model_validate(merged)
        except ValidationError as exc:
            for error in exc.errors():
                location = ".".join(str(part) for part in error["loc"])
                message = error["msg"].removeprefix("Value error, ")
                if error["type"] == "missing":
                    message = "required (a new rule needs metric and levels)"
                elif error["type"] == "extra_forbidden":
                    message = "unknown key (check the spelling)"
                problems.append((f"{name}.{location}".rstrip("."), message))
    return rules, problems
