"""The ICMP probe: its settings and the collector that runs one round of echoes per target.

The echoes themselves go over the shared sockets of `collectors.pinger.Pinger`; this module
turns a round into an `EchoRound` and resolves names in the background.

This module must not import anything from the exporter, alerting or MQTT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Annotated, ClassVar

from pydantic import BeforeValidator, Field, model_validator

from collectors.base import CollectError, CollectorSettings
from collectors.icmp_wire import TOKEN_LEN
from collectors.pinger import Pinger, PingOutcome
from collectors.resolve import Address, Resolver
from netmon.model import Duration, EchoRound, Observation, ProbeRole, ProbeTarget, ReachPolicy

log = logging.getLogger(__name__)

DSCP_NAMES: dict[str, int] = {
    "BE": 0,
    "DF": 0,
    "EF": 46,
    **{f"CS{n}": n * 8 for n in range(8)},
    **{f"AF{c}{d}": c * 8 + d * 2 for c in range(1, 5) for d in range(1, 4)},
}


def parse_dscp(value: object) -> object:
    """A DSCP code point as a number (0-63) or a name such as AF41, EF, CS5."""
    if isinstance(value, str):
        name = value.strip().upper()
        if name in DSCP_NAMES:
            return DSCP_NAMES[name]
        if name.isdigit():
            return int(name)
        raise ValueError(f"unknown DSCP name {value!r} (use 0-63 or a name such as AF41, EF, CS5)")
    return value


Dscp = Annotated[int, BeforeValidator(parse_dscp), Field(ge=0, le=63)]


class IcmpSettings(CollectorSettings):
    """ICMP probe settings. Defaults suit a NOC watching ~200 sites over lossy rural links: one
    echo a second each; a lost echo is confirmed at once by 10 quick echoes, and only when they
    are all lost too is the target down (~2.2 s median after a cut); up again after 3 replies
    in a row (a reply is confirmed the same way); loss judged over 10 minutes of echoes, RTT
    and jitter over 60 s. ICMP is the probe that decides whether a target is up:
    `reach_policy()` hands the state store these numbers."""

    role: ClassVar[ProbeRole] = ProbeRole.REACH

    interval: Duration = Field(default=1.0, gt=0)
    # An echo later than 800 ms is a failure for interactive video anyway, and the round must
    # end inside the interval or every round of a silent target would push back the next one.
    timeout: Duration = Field(default=0.8, gt=0)
    count: int = Field(default=1, ge=1, le=1000, description="echoes per round")
    spacing: Duration = Field(default=0.02, ge=0.001, description="gap between echoes of a round")
    size: int = Field(default=56, ge=TOKEN_LEN, le=1472, description="payload bytes")
    dscp: Dscp = Field(default=0, description="DSCP marking, e.g. AF41 for interactive video")
    # Two lost echoes in a row happen by chance on a link that loses a few per thousand
    # (215 sites x 600 echoes x 0.005^2 = 3 false downs per 10 minutes); eleven in a row, ten
    # of them 50 ms apart, at 5 % random loss 0.05^11 per echo: 1e-7 per site and year. Ten
    # confirmation echoes also outlast a radio link's bursts of 5-10 lost echoes, which are
    # instability, not an outage.
    confirm: int = Field(
        default=10, ge=0, le=100, description="echoes sent at once to confirm a doubtful one"
    )
    confirm_spacing: Duration = Field(default=0.05, ge=0.001, le=1.0)
    confirm_timeout: Duration = Field(default=0.5, gt=0, le=5.0)
    down_after: int | None = Field(
        default=None,
        ge=1,
        description="lost echoes in a row, confirmation echoes included, before down "
        "(default: 1 + confirm; 2 with confirm: 0, so that one lost echo never decides)",
    )
    up_after: int = Field(default=3, ge=1, description="replies in a row before up again")
    window: Duration = Field(default=60.0, gt=0, description="sliding window for RTT and jitter")
    loss_window: Duration = Field(
        default=600.0, gt=0, description="sliding window of the loss statistics"
    )

    def reach_policy(self) -> ReachPolicy:
        return ReachPolicy(
            down_after=self.down_after if self.down_after is not None else 1 + (self.confirm or 1),
            up_after=self.up_after,
            window=self.window,
            loss_window=self.loss_window,
            confirm=self.confirm,
            confirm_spacing=self.confirm_spacing,
            confirm_timeout=self.confirm_timeout,
        )

    @model_validator(mode="after")
    def _round_fits_interval(self) -> IcmpSettings:
        round_time = self.timeout + (self.count - 1) * self.spacing
        if round_time >= self.interval:
            raise ValueError(
                f"a round of {self.count} echoes lasts up to {round_time:g}s "
                f"(timeout + (count-1) x spacing); it must be shorter than the interval "
                f"{self.interval:g}s"
            )
        return self


class IcmpCollector:
    """The scheduler's ICMP collector: one round of echoes per run over a shared Pinger.

    Names are resolved in the background (`collectors.resolve`), never inside a round: a slow
    resolver must not eat the round's time (and with it every other target of the tick). A name
    not yet resolved gives a "resolving" result that leaves the target's state alone; a name
    that does not resolve counts as unreachable.
    """

    name: ClassVar[str] = "icmp"
    settings_model: ClassVar[type[CollectorSettings]] = IcmpSettings

    def __init__(self, *, pinger: Pinger | None = None, resolver: Resolver | None = None) -> None:
        self._pinger = pinger or Pinger()
        self._owns_pinger = pinger is None
        self._resolver = resolver or Resolver()

    @property
    def pinger(self) -> Pinger:
        return self._pinger

    async def start(self) -> None:
        if self._owns_pinger:
            await self._pinger.start()

    async def close(self) -> None:
        await self._resolver.close()
        if self._owns_pinger:
            await self._pinger.close()

    async def collect(self, target: ProbeTarget, settings: CollectorSettings) -> Observation:
        """One round for one target; a name is resolved first (for one-off checks)."""
        with contextlib.suppress(CollectError):
            await self.resolve(target.address)
        return (await self.collect_batch([(target, settings)]))[0]

    async def collect_batch(
        self, items: Sequence[tuple[ProbeTarget, CollectorSettings]]
    ) -> list[Observation]:
        """One round for each target; targets that share settings share one ping_many()."""
        by_settings: dict[IcmpSettings, list[int]] = {}
        for index, (_, settings) in enumerate(items):
            assert isinstance(settings, IcmpSettings)
            by_settings.setdefault(settings, []).append(index)
        results: list[Observation | None] = [None] * len(items)

        async def run(settings: IcmpSettings, indexes: list[int]) -> None:
            pingable: list[tuple[int, str]] = []
            for index in indexes:
                target = items[index][0]
                address = self._address(target.address)
                if isinstance(address, str):
                    pingable.append((index, address))
                else:
                    results[index] = self._unresolved(target, settings, address)
            outcomes = await self._pinger.ping_many(
                [address for _, address in pingable],
                count=settings.count,
                spacing=settings.spacing,
                timeout=settings.timeout,
                size=settings.size,
                dscp=settings.dscp,
            )
            for (index, address), outcome in zip(pingable, outcomes, strict=True):
                results[index] = self._round(items[index][0], settings, address, outcome)

        if len(by_settings) == 1:
            await run(*next(iter(by_settings.items())))
        else:
            await asyncio.gather(*(run(s, indexes) for s, indexes in by_settings.items()))
        return [result for result in results if result is not None]

    async def confirm(
        self, target: ProbeTarget, address: str, settings: CollectorSettings
    ) -> EchoRound:
        """Echoes sent at once to confirm a doubtful round, to the address that round used,
        marked and sized as the regular ones (the same path, the same queue)."""
        assert isinstance(settings, IcmpSettings)
        policy = settings.reach_policy()
        outcome = (
            await self._pinger.ping_many(
                [address],
                count=policy.confirm,
                spacing=policy.confirm_spacing,
                timeout=policy.confirm_timeout,
                size=settings.size,
                dscp=settings.dscp,
            )
        )[0]
        answered = [rtt for rtt in outcome.rtts if rtt is not None]
        return EchoRound(
            target=target.id,
            collector=self.name,
            ok=bool(answered),
            duration=(policy.confirm - 1) * policy.confirm_spacing
            + (policy.confirm_timeout if len(answered) < policy.confirm else max(answered)),
            reason=None if answered else ("send" if outcome.error else "timeout"),
            detail=outcome.error if not answered else None,
            address=address,
            rtts=outcome.rtts,
            confirmation=True,
        )

    def _round(
        self,
        target: ProbeTarget,
        settings: IcmpSettings,
        address: str,
        outcome: PingOutcome,
    ) -> EchoRound:
        answered = [rtt for rtt in outcome.rtts if rtt is not None]
        ok = bool(answered)
        # How long this target's round took, not the whole batch's.
        last = settings.timeout if len(answered) < len(outcome.rtts) else max(answered)
        reason = None if ok else ("send" if outcome.error else "timeout")
        return EchoRound(
            target=target.id,
            collector=self.name,
            ok=ok,
            duration=(settings.count - 1) * settings.spacing + last,
            reason=reason,
            detail=outcome.error if not ok else None,
            address=address,
            rtts=outcome.rtts,
        )

    def _unresolved(
        self, target: ProbeTarget, settings: IcmpSettings, failure: CollectError | None
    ) -> Observation:
        if failure is None:
            # Not known yet: say so without touching the target's up/down state.
            return Observation(
                target=target.id,
                collector=self.name,
                ok=False,
                duration=0.0,
                reason="resolving",
                detail=f"looking up {target.address}",
            )
        # A name that does not resolve is as unreachable as a silent host: every echo is lost.
        return EchoRound(
            target=target.id,
            collector=self.name,
            ok=False,
            duration=0.0,
            reason=failure.reason,
            detail=failure.detail,
            address="",
            rtts=(None,) * settings.count,
        )

    def _address(self, host: str) -> str | CollectError | None:
        """The address to ping now; CollectError if the name does not resolve; None if the
        answer is not in yet (a background lookup is then under way)."""
        address = self._resolver.peek(host)
        return address.ip if isinstance(address, Address) else address

    async def resolve(self, host: str) -> str:
        """The address for a host now, waiting for the resolver if need be."""
        return (await self._resolver.resolve(host)).ip
