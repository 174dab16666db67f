"""A target's live status as people and programs read it: one JSON shape, built in one place.

The targets API (`GET /api/v1/targets`), the retained MQTT status topics and the status page
all show the same facts; they take them from here so they never disagree.
"""

from __future__ import annotations

from typing import Any

from netmon.model import iso
from netmon.state import TargetState, live_status


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def live_json(state: TargetState, degraded: bool) -> dict[str, Any]:
    """Reach as people see it (up, down, degraded, unknown), since when, and the echo figures."""
    icmp = state.icmp
    return {
        "status": live_status(state.reach, degraded),
        "since": iso(icmp.since) if icmp else None,
        "rtt_ms": ms(icmp.last_rtt) if icmp else None,
        "loss_ratio": icmp.window.loss_ratio() if icmp else None,
        "jitter_ms": ms(icmp.window.jitter()) if icmp else None,
    }


def status_message(state: TargetState, degraded: bool, now: float) -> dict[str, Any]:
    """The retained `{prefix}/status/{target}` payload."""
    live = live_json(state, degraded)
    return {
        "target": state.target.id,
        "name": state.target.name,
        "district": state.target.district,
        "state": live.pop("status"),
        **live,
        "updated": iso(now),
    }


def target_json(state: TargetState, degraded: bool = False) -> dict[str, Any]:
    """One target in `GET /api/v1/targets`: identity, live status, SNMP and probe results."""
    target = state.target
    icmp = state.icmp
    live = live_json(state, degraded)
    return {
        "id": target.id,
        "name": target.name,
        "address": target.address,
        "kind": target.kind,
        "site": target.site,
        "district": target.district,
        "group": target.group,
        "labels": dict(target.labels),
        "state": state.reach.value,
        **live,
        "packets_sent": icmp.sent_total if icmp else 0,
        "packets_received": icmp.received_total if icmp else 0,
        "snmp": {
            name: {
                "up": device.up,
                "sys_name": device.sys_name,
                "uptime_seconds": None
                if device.uptime_ticks is None
                else device.uptime_ticks / 100,
                "interfaces": len(device.interfaces),
                "reboots": device.reboots,
            }
            for name, device in sorted(state.devices.items())
        },
        "readiness": None
        if state.readiness is None
        else {
            "verdict": state.readiness.verdict.value,
            "reasons": list(state.readiness.reasons),
            "check": state.readiness.check_id,
        },
        "probes": {
            name: {
                "success": result.success,
                "duration_seconds": round(result.duration, 6),
                "reason": result.reason,
                "detail": result.detail,
                "updated": iso(result.updated),
            }
            for name, result in sorted(state.probes.items())
        },
    }
