"""The one explicit map from probe name to collector class.

Adding a protocol is one module in this package and one entry here; the core looks collectors
up by name through this map and never imports a collector module itself.
"""

from __future__ import annotations

from collectors.base import Collector, CollectorSettings
from collectors.http import HttpCollector
from collectors.icmp import IcmpCollector
from collectors.sip import SipCollector
from collectors.snmp.collector import SnmpCollector
from collectors.tcp import TcpCollector

COLLECTORS: dict[str, type[Collector]] = {
    IcmpCollector.name: IcmpCollector,
    SnmpCollector.name: SnmpCollector,
    TcpCollector.name: TcpCollector,
    HttpCollector.name: HttpCollector,
    SipCollector.name: SipCollector,
}


def settings_model(name: str) -> type[CollectorSettings]:
    return COLLECTORS[name].settings_model


def names() -> list[str]:
    return sorted(COLLECTORS)
