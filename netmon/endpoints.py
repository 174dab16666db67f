"""A room's own status as netmon judges it: the endpoint's word (its API) and its registrar's.

The endpoint says whether it is registered, in a call, in standby, which peripherals it has
and what diagnostics it raises (`EndpointStatus`, from the `xapi` or `poly` probe). The
registrar says whether it holds a live contact for the endpoint's address of record
(`RegistrarContacts`, one poll for every endpoint registered there). When both speak and
disagree, the registration is one-sided: the codec believes it can be called and cannot be,
or the registrar routes calls to a codec that thinks it is offline.

Pure functions of the state store's data, shared by the exporter, the alert signals, the
readiness verdicts, the status page and the API: one reading of the same facts everywhere.
No I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from netmon.model import (
    Contact,
    Diagnostic,
    DiagnosticLevel,
    EndpointStatus,
    Observation,
    Peripheral,
    PeripheralKind,
    RegistrarContacts,
    Registration,
    RegistrationFailure,
    RegistrationState,
)

# The peripherals a meeting cannot go on without; a touch panel missing is not one of them.
ESSENTIAL_PERIPHERALS = (PeripheralKind.CAMERA, PeripheralKind.MICROPHONE, PeripheralKind.DISPLAY)
SEVERE_DIAGNOSTICS = frozenset({DiagnosticLevel.ERROR, DiagnosticLevel.CRITICAL})
PROTOCOLS = ("sip", "h323")
_Keyed = TypeVar("_Keyed", Contact, RegistrationFailure)


def aor_key(aor: str) -> tuple[str, str]:
    """(user, domain) of an address of record as people and registrars write it: with or
    without `sip:`, angle brackets, parameters or a port; the domain lower-case, "" when
    none is given (a registrar without multi-domain support keys on the user alone)."""
    text = aor.strip().strip("<>")
    scheme, colon, rest = text.partition(":")
    if colon and scheme.lower() in ("sip", "sips"):
        text = rest
    text = text.split(";", 1)[0].split("?", 1)[0]
    user, at, host = text.rpartition("@")
    if not at:
        return text, ""
    host = host.lower()
    if host.startswith("["):
        host = host[: host.find("]") + 1]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return user, host


@dataclass(slots=True)
class RegistrarTable:
    """A registrar's last successful poll, indexed by the user part of each AoR."""

    contacts: dict[str, list[Contact]] = field(default_factory=dict)
    failures: dict[str, list[RegistrationFailure]] = field(default_factory=dict)

    @classmethod
    def of(cls, polled: RegistrarContacts) -> RegistrarTable:
        table = cls()
        for contact in polled.contacts:
            table.contacts.setdefault(aor_key(contact.aor)[0], []).append(contact)
        for failure in polled.failures:
            table.failures.setdefault(aor_key(failure.aor)[0], []).append(failure)
        return table

    @staticmethod
    def _matching(entries: dict[str, list[_Keyed]], aor: str) -> list[_Keyed]:
        user, domain = aor_key(aor)
        return [
            entry
            for entry in entries.get(user, ())
            if not domain or not (theirs := aor_key(entry.aor)[1]) or theirs == domain
        ]

    def word(self, registrar: str, aor: str) -> RegistrarWord:
        failures = self._matching(self.failures, aor)
        return RegistrarWord(
            registrar=registrar,
            known=True,
            contacts=tuple(self._matching(self.contacts, aor)),
            failure=max(failures, key=lambda f: f.at) if failures else None,
        )


@dataclass(frozen=True, slots=True)
class RegistrarWord:
    """What a registrar says of one endpoint: its live contacts, its last refused REGISTER;
    `known` False (with `reason`) while the registrar cannot be read."""

    registrar: str  # the registrar's target id
    known: bool
    contacts: tuple[Contact, ...] = ()
    failure: RegistrationFailure | None = None
    reason: str = ""

    @property
    def registered(self) -> bool | None:
        return bool(self.contacts) if self.known else None


def registrar_says(
    registrar: str, aor: str, table: RegistrarTable | None, poll: Observation
) -> RegistrarWord:
    """What a registrar's latest `poll` says of one AoR: its table's word, or unknown with the
    poll's failure when the registrar could not be read."""
    if table is not None:
        return table.word(registrar, aor)
    return RegistrarWord(registrar, known=False, reason=poll.detail or poll.reason or "failed")


@dataclass(frozen=True, slots=True)
class EndpointView:
    """Everything netmon knows of a room's own status, read once per use.

    `status` is the endpoint's last answer when its latest poll succeeded, None otherwise
    (`status_problem` then says why: not polled yet, or the poll's failure). `registrar` is
    None for an endpoint with no registrar in the inventory.
    """

    has_api: bool
    status: EndpointStatus | None
    status_problem: str | None
    registrar: RegistrarWord | None

    def own_registration(self, protocol: str) -> Registration | None:
        if self.status is None:
            return None
        return next((r for r in self.status.registrations if r.protocol == protocol), None)

    def registered(self, protocol: str) -> bool | None:
        """Whether the room can be called over `protocol`: its own word when it has an API
        and reports the protocol set up, else (SIP) its registrar's; None when nobody can
        say, or the protocol is not set up on the room."""
        own = self.own_registration(protocol)
        if own is not None:
            if own.state is RegistrationState.INACTIVE:
                return None
            if own.state is RegistrationState.REGISTERING:
                return None  # on its way: judged at the next poll, not now
            return own.state is RegistrationState.REGISTERED
        if protocol == "sip" and self.registrar is not None:
            # A plain SIP room, or a codec whose API does not report SIP: the registrar says.
            return self.registrar.registered
        return None

    def unregistered_reason(self, protocol: str) -> str:
        """Why the room is not registered over `protocol`, in the source's own words."""
        own = self.own_registration(protocol)
        if own is not None and own.reason:
            return own.reason
        if self.registrar is not None and self.registrar.failure is not None:
            return self.registrar.failure.reason
        if own is not None:
            return own.state.value
        return "no live contact at the registrar"

    @property
    def one_sided(self) -> bool | None:
        """The room and its registrar disagree on its SIP registration; None when one of
        them cannot say (or the room has no SIP set up)."""
        own = self.own_registration("sip")
        if own is None or own.state in (RegistrationState.INACTIVE, RegistrationState.REGISTERING):
            return None
        if self.registrar is None or self.registrar.registered is None:
            return None
        return (own.state is RegistrationState.REGISTERED) != self.registrar.registered

    def disconnected(
        self, kinds: Iterable[PeripheralKind] = ESSENTIAL_PERIPHERALS
    ) -> list[Peripheral]:
        if self.status is None:
            return []
        wanted = set(kinds)
        return [p for p in self.status.peripherals if p.kind in wanted and not p.connected]

    def diagnostics(
        self, levels: Iterable[DiagnosticLevel] = SEVERE_DIAGNOSTICS
    ) -> list[Diagnostic]:
        if self.status is None:
            return []
        wanted = set(levels)
        return [d for d in self.status.diagnostics if d.level in wanted]

    @property
    def calls(self) -> int | None:
        return None if self.status is None else len(self.status.calls)


def problems(view: EndpointView) -> list[str]:
    """What is wrong with the room by its own status, in a few words each, worst first: what
    its card on the status page and its MQTT status say."""
    found: list[str] = []
    for protocol in PROTOCOLS:
        if view.registered(protocol) is False:
            name = "SIP" if protocol == "sip" else "H.323"
            found.append(f"not registered ({name}): {view.unregistered_reason(protocol)}")
    if view.one_sided:
        found.append("one-sided registration")
    found.extend(f"{p.kind.value.replace('_', ' ')} disconnected" for p in view.disconnected())
    found.extend(
        f"diagnostic {d.level.value}: {d.description or d.type}" for d in view.diagnostics()
    )
    if view.has_api and view.status is None and view.status_problem != "not read yet":
        found.append(f"status not available: {view.status_problem}")
    return found
