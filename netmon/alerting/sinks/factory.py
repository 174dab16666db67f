"""The sinks the config asks for, built in one place so the service needs no sink by name."""

from __future__ import annotations

from netmon.alerting.sinks.alertmanager import AlertmanagerSink
from netmon.alerting.sinks.base import ActiveAlerts, Sink
from netmon.alerting.sinks.mqtt import MqttSink
from netmon.alerting.sinks.webhook import WebhookSink
from netmon.inventory import Inventory


def build_sinks(inventory: Inventory, *, generator_url: str, active: ActiveAlerts) -> list[Sink]:
    config = inventory.config
    alerting = config.alerting
    sinks: list[Sink] = []
    # Alertmanager gets no shard: a label would change when a target moves between shards, and
    # the new owner's alert must be the same alert as the old one's.
    shard = config.sharding.shard if config.sharding is not None else None
    if alerting.mqtt is not None:
        sinks.append(MqttSink(alerting.mqtt, instance=config.instance, active=active, shard=shard))
    if alerting.alertmanager is not None:
        # One sink per member of an HA pair: a dead member never holds up the other.
        sinks += [
            AlertmanagerSink(url, alerting.alertmanager, active=active, generator_url=generator_url)
            for url in alerting.alertmanager.urls
        ]
    sinks += [
        WebhookSink(hook, instance=config.instance, shard=shard) for hook in alerting.webhooks
    ]
    return sinks
