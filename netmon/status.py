"""A target's live status as people and programs read it: one JSON shape, built in one place.

The targets API (`GET /api/v1/targets`), the retained MQTT status topics and the status page
all show the same facts; they take them from here so they never disagree.
"""

from __future__ import annotations

from typing import Any

from netmon.endpoints import EndpointView, problems
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


def room_problems(state: TargetState) -> list[str]:
    view = state.endpoint_view()
    return [] if view is None else problems(view)


def room_json(view: EndpointView) -> dict[str, Any]:
    """The room's own status: what it says over its API and what its registrar says."""
    status = view.status
    registrar = view.registrar
    return {
        "problems": problems(view),
        "status_available": status is not None,
        "status_problem": view.status_problem,
        "vendor": status.vendor if status else None,
        "model": status.model if status else None,
        "software": status.software if status else None,
        "serial": status.serial if status else None,
        "registered": {p: view.registered(p) for p in ("sip", "h323")},
        "registrations": [
            {"protocol": r.protocol, "state": r.state.value, "reason": r.reason}
            for r in (status.registrations if status else ())
        ],
        "registrar": None
        if registrar is None
        else {
            "id": registrar.registrar,
            "known": registrar.known,
            "contacts": [
                {"contact": c.contact, "user_agent": c.user_agent, "expires": iso(c.expires)}
                for c in registrar.contacts
            ],
            "last_failure": None
            if registrar.failure is None
            else {"reason": registrar.failure.reason, "at": iso(registrar.failure.at)},
            "reason": registrar.reason or None,
        },
        "one_sided_registration": view.one_sided,
        "calls": [
            {
                "status": c.status,
                "protocol": c.protocol,
                "direction": c.direction,
                "remote": c.remote,
                "duration_seconds": c.duration,
            }
            for c in (status.calls if status else ())
        ],
        "standby": status.standby if status else None,
        "peripherals": [
            {"type": p.kind.value, "name": p.name, "connected": p.connected}
            for p in (status.peripherals if status else ())
        ],
        "diagnostics": [
            {"level": d.level.value, "type": d.type, "description": d.description}
            for d in (status.diagnostics if status else ())
        ],
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
        "problems": room_problems(state),
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
        "room": None if (view := state.endpoint_view()) is None else room_json(view),
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
