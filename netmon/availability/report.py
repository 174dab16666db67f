"""A report over a period: the journal slice read, the accounting run over the inventory's
targets in scope, the policy attached."""

from __future__ import annotations

import time
from collections.abc import Mapping

from netmon.availability.accounting import Accountant, Meeting, district_summaries
from netmon.availability.calendar import office_spans
from netmon.availability.db import JournalSlice
from netmon.availability.model import Report
from netmon.availability.policy import policy
from netmon.availability.quality import CallQuality
from netmon.config.availability import AvailabilityConfig
from netmon.inventory import Inventory, Target
from netmon.meeting_quality.model import scheduled_id
from netmon.meetings import meeting_targets, meetings_starting


def in_scope(target: Target, scope: Mapping[str, str]) -> bool:
    district, group, wanted = scope.get("district"), scope.get("group"), scope.get("target")
    return (
        (district is None or target.district.casefold() == district.casefold())
        and (group is None or target.group == group)
        and (wanted is None or target.id == wanted)
    )


def scope_problem(inventory: Inventory, scope: Mapping[str, str | None]) -> str | None:
    """Why a scope selects nothing (a misspelt district, a target not in the config), or None."""
    given = {k: v for k, v in scope.items() if v}
    if not given or any(in_scope(t, given) for t in inventory.targets.values()):
        return None
    named = ", ".join(f"{k} {v!r}" for k, v in given.items())
    return f"no target of the config in {named}"


def build_report(
    journal: JournalSlice,
    inventory: Inventory,
    config: AvailabilityConfig,
    *,
    scope: Mapping[str, str] | None = None,
    lang: str = "en",
    generated: float | None = None,
    call_quality: Mapping[tuple[str, str], CallQuality] | None = None,
    source: str = "journal",
) -> Report:
    """`call_quality`: (meeting record id, room) -> the room's call quality in that meeting
    (quality.call_quality), where the meeting quality record has it. `source` is printed in
    the policy: "journal", or the Prometheus series the slice was rebuilt from
    (netmon.availability.prometheus)."""
    scope = {k: v for k, v in (scope or {}).items() if v}
    start, end = journal.start, journal.end
    office, holidays = office_spans(config, start, end, lang)
    targets = inventory.targets
    accountant = Accountant(
        journal,
        targets,
        inventory.rules,
        office,
        config.timezone,
        unknown_is_down=config.unknown == "down",
        degraded=config.degraded,
    )
    chosen = [t for t in targets.values() if in_scope(t, scope)]
    sites = [accountant.subject(t) for t in sorted(chosen, key=lambda t: (t.district, t.id))]
    parents = sorted({t.parent for t in chosen if t.parent and t.parent in targets})
    links = [accountant.subject(targets[p], link=True) for p in parents]
    services = [
        accountant.subject(t, service=name)
        for t in sorted(chosen, key=lambda t: (t.district, t.id))
        for name, _ in t.service_probes()
    ]
    meetings = []
    for configured, begins in meetings_starting(inventory, start, end):
        rooms = [t for t in meeting_targets(inventory, configured) if in_scope(t, scope)]
        if rooms:
            meeting = Meeting(configured.name, begins, begins + configured.duration, rooms)
            verdicts: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}
            for check in journal.checks:  # in time order: the last before the start wins
                if check.meeting == configured.name and check.at <= begins:
                    verdicts[(check.meeting, check.target)] = (check.verdict, check.reasons)
            record_id = scheduled_id(configured.name, begins)
            quality = {room: q for (m, room), q in (call_quality or {}).items() if m == record_id}
            meetings.append(accountant.meeting(meeting, verdicts, quality))
    return Report(
        policy=policy(config, start, end, holidays, source=source),
        start=start,
        end=end,
        timezone=config.timezone,
        generated=time.time() if generated is None else generated,
        sites=sites,
        links=links,
        services=services,
        districts=district_summaries(sites, links, meetings, {t.id for t in chosen if t.is_room}),
        meetings=meetings,
        days=accountant.days,
        scope=dict(scope),
        gaps=accountant.gaps,
    )
