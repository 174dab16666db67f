"""The one explicit map from probe name to its settings model and its collector class.

Adding a protocol is one module in this package and one entry here; the core looks collectors
up by name through this map and never imports a collector module itself.

Settings models are imported here, from modules without transport imports: the config needs
every one of them to validate a file, and `netmon validate` must not load aiohttp or pysnmp.
A collector class is imported by name the first time it is asked for (`collector_class`),
so only a process that runs probes pays for the libraries they use.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache

from collectors.base import Collector, CollectorSettings
from collectors.codec_settings import (
    BaresipSettings,
    KamailioSettings,
    PolySettings,
    XapiSettings,
)
from collectors.http_settings import HttpSettings
from collectors.icmp import IcmpSettings
from collectors.sip import SipSettings
from collectors.snmp.settings import SnmpSettings
from collectors.tcp import TcpSettings


@dataclass(frozen=True, slots=True)
class Probe:
    settings_model: type[CollectorSettings]
    collector: str  # "module:Class", imported on first use


PROBES: dict[str, Probe] = {
    "icmp": Probe(IcmpSettings, "collectors.icmp:IcmpCollector"),
    "snmp": Probe(SnmpSettings, "collectors.snmp.collector:SnmpCollector"),
    "tcp": Probe(TcpSettings, "collectors.tcp:TcpCollector"),
    "http": Probe(HttpSettings, "collectors.http:HttpCollector"),
    "sip": Probe(SipSettings, "collectors.sip:SipCollector"),
    "xapi": Probe(XapiSettings, "collectors.xapi:XapiCollector"),
    "poly": Probe(PolySettings, "collectors.poly:PolyCollector"),
    "kamailio": Probe(KamailioSettings, "collectors.registrar.kamailio:KamailioCollector"),
    "baresip": Probe(BaresipSettings, "collectors.baresip:BaresipCollector"),
}


def settings_model(name: str) -> type[CollectorSettings]:
    return PROBES[name].settings_model


@cache
def collector_class(name: str) -> type[Collector]:
    """The collector class of probe `name`, imported now if it was not yet (blocking: the
    first call for a probe may load its transport library)."""
    module_name, _, class_name = PROBES[name].collector.partition(":")
    collector: type[Collector] = getattr(importlib.import_module(module_name), class_name)
    # The map and the class must agree, or results would be filed under another probe's name.
    if collector.name != name or collector.settings_model is not PROBES[name].settings_model:
        raise RuntimeError(f"{PROBES[name].collector} does not match the registry entry {name!r}")
    return collector


def names() -> list[str]:
    return sorted(PROBES)
