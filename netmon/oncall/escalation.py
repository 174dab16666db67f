"""Escalation (issue 18): from "an alert fires" to "someone is on it", step by step.

The escalator is a sink of the alert engine: it reads its own durable queue ("oncall") of
every announced transition, in order, like the MQTT or Alertmanager sinks (a silenced alert
is never announced, so it pages nobody). For each firing alert a policy takes (the first whose
match takes it) it keeps an escalation: the next step and when it is due. A step pages each of
its recipients on its channel; a policy's `repeat` repeats the last step until someone
acknowledges. What is decided (the escalation's state, and the pages of a step) is written to
the alert database in one transaction, so a restart in the middle of an escalation neither
starts it again from step 1 nor skips a step: a step that came due while netmon was away fires
as soon as it is back. The pages wait in their channel's queue (`page:{channel}`) for its
delivery worker.

What changes an escalation, as on-call staff expect:
- acknowledged: it stops; whoever was paged about it is told who took it;
- the acknowledgement withdrawn: it resumes with the next step, its delay counted from then;
- a rise in severity (the engine also clears an acknowledgement then): worse is news, it
  starts again from step 1 under the policy of the new severity;
- resolved: whoever was paged is told, and it ends;
- a rota handing over while it runs: the new person on call is paged at once with the step
  that paged the one before ("handover").
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping

from netmon.alerting.model import AlertEvent
from netmon.alerting.store import AlertDB
from netmon.channels.base import Page, PageKind
from netmon.config.alerting import Language
from netmon.config.oncall import Notify, OncallConfig, Policy
from netmon.oncall.pages import page_to_json
from netmon.oncall.records import Changes, Escalation, Paged, page_queue
from netmon.oncall.rota import Always, Hours, on_call

log = logging.getLogger(__name__)

QUEUE = "oncall"
# Which of a person's addresses each kind of channel uses.
ADDRESS_FIELD = {"telegram": "telegram", "email": "email", "gateway": "phone"}


class Escalator:
    """The on-call loop's sink: see the module doc. `channels` maps each configured channel's
    name to its kind ("telegram", "email", "gateway")."""

    name = "oncall"
    queue = QUEUE

    def __init__(
        self,
        config: OncallConfig,
        *,
        channels: Mapping[str, str],
        db: AlertDB,
        language: Language,
        clock: Callable[[], float],
        on_paged: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._on_paged = on_paged
        self._language = language
        self.escalations: dict[str, Escalation] = {}
        self._lock = asyncio.Lock()
        self.unaddressed = 0  # recipients a step could not reach (no address for the channel)
        self.set_config(config, channels)

    def set_config(self, config: OncallConfig, channels: Mapping[str, str]) -> None:
        self.config = config
        self._config = config
        self._channels = dict(channels)
        self._policies = {policy.name: policy for policy in config.policies}
        self._office = Hours(config.office_hours, config.zone)

    # --- the sink side ---------------------------------------------------------------------

    async def start(self) -> None:
        await self._reload()
        await self.tick()  # steps that came due while netmon was away

    async def _reload(self) -> None:
        """The escalations as the database has them."""
        loaded: dict[str, Escalation] = {}
        for data in await self._db.call(self._db.load_escalations):
            try:
                escalation = Escalation.from_json(data)
            except (KeyError, TypeError, ValueError) as exc:
                log.error("escalation state unreadable; dropped", extra={"error": str(exc)})
                continue
            loaded[escalation.fingerprint] = escalation
        self.escalations = loaded

    async def send(self, event: AlertEvent) -> None:
        await self._apply(lambda now: self.decide(event, now))

    async def close(self) -> None:
        return None

    async def tick(self) -> None:
        """Steps and repeats that came due, handovers: called every second."""
        await self._apply(self.due)

    async def snooze(self, fingerprint: str, *, until: float) -> bool:
        """No page about this alert before `until` ("Silence 1 h"); whether it escalates."""

        def decide(now: float) -> Changes:
            changes = Changes()
            escalation = self.escalations.get(fingerprint)
            if escalation is not None:
                escalation.snoozed_until = max(escalation.snoozed_until, until)
                changes.save(escalation)
            return changes

        return bool(await self._apply(decide))

    async def forget(self, fingerprints: Iterable[str]) -> None:
        """End, silently, escalations whose alert no longer fires though their queue never
        said so (the alert moved to another shard; its resolve was dropped from a full
        queue)."""

        def decide(now: float) -> Changes:
            changes = Changes()
            for fingerprint in fingerprints:
                if self.escalations.pop(fingerprint, None) is not None:
                    log.info(
                        "escalation of an alert that no longer fires ended",
                        extra={"fingerprint": fingerprint},
                    )
                    changes.end(fingerprint)
            return changes

        await self._apply(decide)

    async def _apply(self, decide: Callable[[float], Changes]) -> Changes:
        """Decide and write in one piece: shielded, so a caller's timeout cannot leave a
        decision taken in memory but never written, and locked, so the next decision sees
        this one's outcome. A write that fails takes the database's word back."""

        async def apply() -> Changes:
            async with self._lock:
                changes = decide(self._clock())
                try:
                    await self._commit(changes)
                except BaseException:
                    await self._reload()
                    raise
                return changes

        return await asyncio.shield(apply())

    async def _commit(self, changes: Changes) -> None:
        if not changes:
            return
        saved = [(fp, e.to_json()) for fp, e in changes.saved.items()]
        pages = [(page_queue(p.channel), page_to_json(p)) for p in changes.pages]
        await self._db.call(self._db.save_escalations, saved, sorted(changes.ended), pages)
        if pages:
            self._on_paged()

    # --- deciding ----------------------------------------------------------------------------

    def decide(self, event: AlertEvent, now: float) -> Changes:
        """What `event` changes (applied to `self.escalations` at once)."""
        changes = Changes()
        fingerprint = event.fingerprint
        escalation = self.escalations.get(fingerprint)
        if escalation is not None and event.event_id and event.event_id == escalation.last_event_id:
            return changes  # delivered again after a restart: already taken into account
        if not event.firing:
            if escalation is not None:
                self._tell_paged(escalation, event, PageKind.RESOLVED, now, changes)
                del self.escalations[fingerprint]
                changes.end(fingerprint)
            return changes
        if escalation is None:
            policy = self._policy_for(event)
            if policy is None or event.acknowledged:
                return changes
            escalation = Escalation(fingerprint, policy.name, event, event.severity)
            self._restart(escalation, policy, now)
            self.escalations[fingerprint] = escalation
        else:
            self._follow(escalation, event, now, changes)
        escalation.event = event
        escalation.last_event_id = event.event_id
        self._fire_due(escalation, now, changes)
        changes.save(escalation)
        return changes

    def _follow(
        self, escalation: Escalation, event: AlertEvent, now: float, changes: Changes
    ) -> None:
        rose = event.severity.rank > escalation.severity.rank
        if event.acknowledged and not escalation.acknowledged:
            escalation.acknowledged = True
            escalation.event = event
            self._tell_paged(escalation, event, PageKind.ACKNOWLEDGED, now, changes)
        elif not event.acknowledged and (rose or escalation.acknowledged):
            policy = self._policy_for(event) if rose else self._policies.get(escalation.policy)
            if policy is None:
                escalation.next_at = None  # no policy takes it any more: nothing to page
            elif rose:
                escalation.policy, escalation.severity = policy.name, event.severity
                self._restart(escalation, policy, now)
            else:
                self._resume(escalation, policy, now)
            escalation.acknowledged = False
        elif event.severity.rank < escalation.severity.rank:
            escalation.severity = event.severity  # so a rise back is news again

    def _restart(self, escalation: Escalation, policy: Policy, now: float) -> None:
        escalation.step = 0
        escalation.next_at = self._hours(policy).add(now, policy.steps[0].after)

    def _resume(self, escalation: Escalation, policy: Policy, now: float) -> None:
        steps = policy.steps
        if escalation.step < len(steps):
            gap = steps[escalation.step].after - (
                steps[escalation.step - 1].after if escalation.step else 0.0
            )
        elif policy.repeat is not None:
            gap = policy.repeat
        else:
            escalation.next_at = None
            return
        escalation.next_at = self._hours(policy).add(max(now, escalation.snoozed_until), gap)

    def due(self, now: float) -> Changes:
        changes = Changes()
        for escalation in list(self.escalations.values()):
            if escalation.acknowledged or now < escalation.snoozed_until:
                continue
            before = (escalation.step, escalation.next_at, dict(escalation.on_call))
            try:
                self._fire_due(escalation, now, changes)
                self._hand_over(escalation, now, changes)
            except Exception:  # one escalation's bug must not stop the others'
                log.exception("escalation failed", extra={"fingerprint": escalation.fingerprint})
                continue
            if (escalation.step, escalation.next_at, escalation.on_call) != before:
                changes.save(escalation)
        return changes

    def _fire_due(self, escalation: Escalation, now: float, changes: Changes) -> None:
        policy = self._policies.get(escalation.policy)
        if policy is None or escalation.acknowledged or now < escalation.snoozed_until:
            return
        hours = self._hours(policy)
        while escalation.next_at is not None and escalation.next_at <= now:
            if escalation.step >= len(policy.steps) and policy.repeat is None:
                escalation.next_at = None  # the policy lost steps in a reload: nothing left
                break
            due = escalation.next_at
            if escalation.step < len(policy.steps):
                self._page_step(escalation, policy, escalation.step, PageKind.FIRING, now, changes)
                escalation.step += 1
                if escalation.step < len(policy.steps):
                    gap = (
                        policy.steps[escalation.step].after
                        - policy.steps[escalation.step - 1].after
                    )
                    escalation.next_at = hours.add(due, gap)
                elif policy.repeat is not None:
                    escalation.next_at = hours.add(due, policy.repeat)
                else:
                    escalation.next_at = None
            else:
                assert policy.repeat is not None  # the top of the loop checked
                last = len(policy.steps) - 1
                self._page_step(escalation, policy, last, PageKind.REMINDER, now, changes)
                # Reminders missed while netmon was away are one reminder, not a burst.
                escalation.next_at = hours.add(max(due, now), policy.repeat)

    def _hand_over(self, escalation: Escalation, now: float, changes: Changes) -> None:
        """A rota changed hands while the escalation waits for someone: page the new person
        with the step that paged the rota (not necessarily the last step)."""
        policy = self._policies.get(escalation.policy)
        if policy is None or not escalation.on_call:
            return
        for rota_name, paged in list(escalation.on_call.items()):
            rota = self._config.rotas.get(rota_name)
            if rota is None:
                continue
            person = on_call(rota, now, self._config.zone).person
            if person == paged:
                continue
            escalation.on_call[rota_name] = person
            index = min(escalation.on_call_step.get(rota_name, 0), len(policy.steps) - 1)
            for notify in policy.steps[index].notify:
                if notify.to == f"oncall:{rota_name}":
                    extra = {"handover": paged}
                    self._page(escalation, notify, index, PageKind.REMINDER, now, changes, extra)

    # --- pages ---------------------------------------------------------------------------------

    def _page_step(
        self,
        escalation: Escalation,
        policy: Policy,
        index: int,
        kind: PageKind,
        now: float,
        changes: Changes,
    ) -> None:
        for notify in policy.steps[index].notify:
            self._page(escalation, notify, index, kind, now, changes, {})

    def _page(
        self,
        escalation: Escalation,
        notify: Notify,
        step: int,
        kind: PageKind,
        now: float,
        changes: Changes,
        extra: dict[str, str],
    ) -> None:
        found = self._recipient(notify, escalation.event, now)
        if found is None:
            self.unaddressed += 1
            log.warning(
                "cannot page: no address for this channel",
                extra={
                    "channel": notify.channel,
                    "to": notify.to,
                    "alert": escalation.event.alertname,
                },
            )
            return
        recipient, person, language = found
        kind_, _, rota = notify.to.partition(":")
        if kind_ == "oncall":
            escalation.on_call[rota] = person
            escalation.on_call_step[rota] = step
        changes.pages.append(
            self._new_page(
                notify.channel,
                recipient,
                kind,
                escalation.event,
                language,
                now,
                step,
                person,
                extra,
            )
        )
        paged = Paged(notify.channel, recipient, person, language)
        if paged not in escalation.paged:
            escalation.paged.append(paged)

    def _tell_paged(
        self,
        escalation: Escalation,
        event: AlertEvent,
        kind: PageKind,
        now: float,
        changes: Changes,
    ) -> None:
        for paged in escalation.paged:
            changes.pages.append(
                self._new_page(
                    paged.channel,
                    paged.recipient,
                    kind,
                    event,
                    paged.language,
                    now,
                    escalation.step - 1,
                    paged.person,
                    {},
                )
            )

    def _new_page(
        self,
        channel: str,
        recipient: str,
        kind: PageKind,
        event: AlertEvent,
        language: Language,
        now: float,
        step: int,
        person: str,
        extra: dict[str, str],
    ) -> Page:
        who = self._config.people.get(person)
        return Page(
            page_id=uuid.uuid4().hex[:16],
            channel=channel,
            recipient=recipient,
            kind=kind,
            events=(event,),
            language=language,
            created_at=now,
            step=max(step, 0),
            person=(who.name or person) if who is not None else person,
            acknowledged_by=event.acknowledged_by,
            status_url=self._config.status_url,
            extra=extra,
        )

    def _recipient(
        self, notify: Notify, event: AlertEvent, now: float
    ) -> tuple[str, str, Language] | None:
        """(address, person id or "", language) of a step's recipient on its channel."""
        kind = self._channels.get(notify.channel)
        if kind is None:
            return None
        what, _, name = notify.to.partition(":")
        person_id = ""
        if what == "oncall":
            rota = self._config.rotas[name]
            person_id = on_call(rota, now, self._config.zone).person
        elif what == "person":
            person_id = name
        if person_id:
            person = self._config.people[person_id]
            address = getattr(person, ADDRESS_FIELD.get(kind, ""), None)
            return (str(address), person_id, person.language) if address else None
        if notify.to == "district":
            district = event.context.get("district") or event.labels.get("district", "")
            address = self._config.districts.get(district, {}).get(notify.channel)
            return (address, "", self._language) if address else None
        return notify.to, "", self._language

    def _policy_for(self, event: AlertEvent) -> Policy | None:
        for policy in self._config.policies:
            if _matches(policy, event):
                return policy
        return None

    def _hours(self, policy: Policy) -> Hours | Always:
        return self._office if policy.hours == "office" else Always()


def _matches(policy: Policy, event: AlertEvent) -> bool:
    match = policy.match
    labels = {**event.context, **event.labels}

    def any_glob(patterns: Iterable[str], value: str) -> bool:
        return any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)

    return (
        (not match.severity or event.severity in match.severity)
        and (not match.district or any_glob(match.district, labels.get("district", "")))
        and (not match.group or any_glob(match.group, labels.get("group", "")))
        and (not match.alertname or any_glob(match.alertname, event.alertname))
    )
