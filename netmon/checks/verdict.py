"""From measurements to GO / WARN / NO-GO, with the reasons in plain words.

The limits are the alert thresholds (`thresholds:` in the config). A meeting is judged a little
differently from a standing alert: 50 echoes cannot see 0.1 % loss, so loss warns above
`loss_bad` and stops the meeting above `loss_critical`; RTT and jitter warn above their `warn`
level and stop it above `bad`. A dead SIP stack, a dead call-signalling port or a down WAN
interface stop it; a management page that fails, a reboot in the last hour or a busy district
uplink only warn.
"""

from __future__ import annotations

from netmon.checks.collected import Collected
from netmon.checks.model import EndpointReport, Finding, Verdict
from netmon.config.thresholds import Thresholds
from netmon.inventory import Target
from netmon.windows import jitter as rtt_jitter
from netmon.windows import percentile_95

RECENT_REBOOT = 3600.0
UPLINK_BUSY = 0.9


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.1f}%"


def judge(
    report: EndpointReport,
    target: Target,
    collected: Collected,
    limits: Thresholds,
    burst_count: int,
) -> None:
    add = report.findings.append
    echo = collected.echo
    if echo is None:
        add(Finding(Verdict.NO_GO, "ping: not measured (the check ran out of time)"))
    else:
        rtts = [r for r in echo.rtts if r is not None]
        sent, received = len(echo.rtts), len(rtts)
        loss = 1 - received / sent if sent else 1.0
        report.measurements["packets_sent"] = sent
        report.measurements["packets_received"] = received
        report.measurements["loss_ratio"] = round(loss, 4)
        if received == 0:
            add(Finding(Verdict.NO_GO, f"unreachable: no reply to {sent} pings"))
        else:
            p95 = percentile_95(rtts)
            jitter = rtt_jitter(rtts) or 0.0
            report.measurements["rtt_p95_ms"] = round(p95 * 1000, 2)
            report.measurements["jitter_ms"] = round(jitter * 1000, 2)
            if loss > limits.loss_critical:
                add(Finding(Verdict.NO_GO, f"loss {_pct(loss)} > {_pct(limits.loss_critical)}"))
            elif loss > limits.loss_bad:
                add(Finding(Verdict.WARN, f"loss {_pct(loss)} > {_pct(limits.loss_bad)}"))
            if p95 > limits.rtt_bad:
                add(Finding(Verdict.NO_GO, f"RTT p95 {_ms(p95)} > {_ms(limits.rtt_bad)}"))
            elif p95 > limits.rtt_warn:
                add(Finding(Verdict.WARN, f"RTT p95 {_ms(p95)} > {_ms(limits.rtt_warn)}"))
            if jitter > limits.jitter_bad:
                add(Finding(Verdict.NO_GO, f"jitter {_ms(jitter)} > {_ms(limits.jitter_bad)}"))
            elif jitter > limits.jitter_warn:
                add(Finding(Verdict.WARN, f"jitter {_ms(jitter)} > {_ms(limits.jitter_warn)}"))

    probes = {}
    for name, observation in sorted(collected.probes.items()):
        # What a probe failing means for a meeting is the probe's own (`stops_meeting`).
        settings = target.probe(name)
        label = (settings.readiness_label if settings else "") or name
        weight = Verdict.NO_GO if settings is not None and settings.stops_meeting else Verdict.WARN
        probes[name] = {
            "ok": observation.ok,
            "duration_ms": round(observation.duration * 1000, 1),
            "reason": observation.reason,
            "detail": observation.detail,
        }
        if not observation.ok:
            why = {"timeout": "no answer", "refused": "refused"}.get(
                observation.reason or "", observation.detail or observation.reason or "failed"
            )
            add(Finding(weight, f"{label}: {why}"))
    if probes:
        report.measurements["probes"] = probes

    _judge_device(report, target, collected)
    if collected.uplink_utilization is not None:
        report.measurements["uplink_utilization"] = round(collected.uplink_utilization, 4)
        if collected.uplink_utilization > UPLINK_BUSY:
            add(
                Finding(
                    Verdict.WARN,
                    f"district uplink {_pct(collected.uplink_utilization)} utilised "
                    f"({collected.uplink_name})",
                )
            )


def _judge_device(report: EndpointReport, target: Target, collected: Collected) -> None:
    add = report.findings.append
    if target.device_probe() is None:
        return
    after = collected.device_after or collected.device_before
    if after is None:
        add(Finding(Verdict.WARN, f"SNMP: no answer ({collected.device_error or 'timeout'})"))
        return
    if after.uptime_ticks is not None:
        uptime = after.uptime_ticks / 100
        report.measurements["uptime_seconds"] = uptime
        if uptime < RECENT_REBOOT:
            add(Finding(Verdict.WARN, f"rebooted {uptime / 60:.0f} min ago"))
    watched = [i for i in after.interfaces if not target.uplink or i.name == target.uplink]
    down = [i for i in watched if i.admin_up and i.oper_up is False]
    if down and target.uplink:
        add(Finding(Verdict.NO_GO, f"WAN interface {target.uplink} is down"))
    before = collected.device_before
    if before is not None and collected.device_after is not None:
        old = {i.index: i for i in before.interfaces}
        grown = 0
        for interface in watched:
            previous = old.get(interface.index)
            if previous is None:
                continue
            for a, b in (
                (previous.in_errors, interface.in_errors),
                (previous.out_errors, interface.out_errors),
            ):
                if a is not None and b is not None and b > a:
                    grown += b - a
        report.measurements["interface_errors_during_check"] = grown
        if grown:
            add(Finding(Verdict.WARN, f"{grown} interface errors during the check"))
