"""The one explicit map from probe name to collector class.

Adding a protocol is one module in this package and one entry here; the core looks collectors
up by name through this map and never imports a collector module itself.
"""

from __future__ import annotations

from collectors.base import Collector, CollectorSettings
from collectors.icmp import IcmpCollector
from collectors.snmp.collector import SnmpCollector

COLLECTORS: dict[str, type[Collector]] = {
    IcmpCollector.name: IcmpCollector,
    SnmpCollector.name: SnmpCollector,
}


def settings_model(name: str) -> type[CollectorSettings]:
    return COLLECTORS[name].settings_model


def names() -> list[str]:
    return sorted(COLLECTORS)
