"""The composition root: builds every part from the inventory, wires them, runs until told to stop.

SIGTERM and SIGINT stop cleanly (jobs cancelled, server closed, sockets released); SIGHUP reloads
the config file, and a config that does not validate is logged and ignored while the old one
keeps running.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

from aiohttp import web

from collectors import registry
from collectors.base import Collector
from netmon import heap
from netmon.alerting.api import routes as alert_routes
from netmon.alerting.metrics import AlertingCollector
from netmon.alerting.runtime import Alerting
from netmon.alerting.sinks.factory import build_sinks
from netmon.api import build_app
from netmon.api_access import Access, machine_names
from netmon.availability.runtime import Availability
from netmon.call_poller import CallPoller
from netmon.checks.service import Checks
from netmon.config.errors import ConfigError
from netmon.config.loader import load_file
from netmon.config.schema import parse_listen
from netmon.confirm import Confirmer
from netmon.exporter import build_registry
from netmon.inventory import Inventory
from netmon.meeting_quality.api import routes as meeting_routes
from netmon.meeting_quality.db import MeetingDB
from netmon.meeting_quality.recorder import MeetingRecorder
from netmon.scheduler import Scheduler
from netmon.sharding_api import ShardCollector, shard_routes
from netmon.state import Reach, ReachChange, StateStore
from netmon.status_page import status_page
from netmon.traps import TrapIntake, TrapReceiverCollector

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _log_reach(change: ReachChange) -> None:
    context = {"target": change.target.id, "address": change.target.address}
    if change.reach is Reach.DOWN:
        log.warning("target down", extra=context)
    elif change.previous is Reach.DOWN:
        log.info("target up again", extra=context)


def alert_database_path(
    database: str, config_path: Path | None, environ: Mapping[str, str]
) -> Path:
    """Where alerting.database is. A relative path (the default one too) is in the state
    directory systemd gives the service (StateDirectory= sets $STATE_DIRECTORY, a
    colon-separated list when the unit names several): the config's own directory is
    read-only there, and netmon would exit at every start. Without one, next to the config."""
    path = Path(database)
    if path.is_absolute():
        return path
    state = environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state:
        return Path(state) / path
    if config_path is not None:
        return config_path.parent / path
    return path


def freeze_long_lived() -> None:
    """Move every object alive now (the inventory, modules, collectors: thousands per target)
    out of the garbage collector's sight, and collect the young generation less often.

    Frozen, full collections scan only what the run creates. But that is still 20+ objects a
    target (the echo windows), and at the default threshold (a collection of the young every
    700 net allocations) the state of each probe run, which lives about a second, outlives
    two young collections and reaches the old generation: at 10,000 targets that forced a
    full collection every 2-3 s, each 0.3-0.5 s during which no probe is sent or timestamped,
    11-23 % of the loop's time (issue 17, bench/scrape_bench.py "full GCs"). Collecting the
    young every 50,000 allocations (about once a second at 10,000 targets, a few ms each) lets
    such objects die young; cyclic garbage waits a little longer, which costs a few MB at most.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 10, 10)


class Service:
    """netmon running: state store, collectors, scheduler and HTTP server, owned together."""

    def __init__(
        self,
        *,
        inventory: Inventory,
        config_path: Path | None = None,
        listen: str | None = None,
        load: Callable[[Path], Inventory] = load_file,
        extra_routes: Sequence[web.AbstractRouteDef] = (),
        alert_db: Path | None = None,
    ) -> None:
        self.inventory = inventory
        self.store = StateStore()
        self.store.on_reach_change(_log_reach)
        self._config_path = config_path
        self._listen = listen or inventory.config.http.listen
        self._load = load
        self._extra_routes = extra_routes  # the demo's fault injection, for one
        self._alert_db = alert_db
        self.alerting: Alerting | None = None
        self.checks: Checks | None = None
        self.traps: TrapIntake | None = None
        self.meetings: MeetingRecorder | None = None
        self.availability: Availability | None = None
        self._collectors: dict[str, Collector] = {}
        self._scheduler: Scheduler | None = None
        self._confirmer: Confirmer | None = None
        self._call_poller: CallPoller | None = None
        self._runner: web.AppRunner | None = None
        self._stop = asyncio.Event()
        self._ready = False
        self._reloading: asyncio.Task[None] | None = None
        self._reload_again = False
        self.http_url = ""
        self.access = Access(token=inventory.config.http.token)
        self._machine_names: frozenset[str] = frozenset()

    def _apply_access(self, inventory: Inventory) -> None:
        """The token and Host names the HTTP guard checks: at start, and at every reload
        (a leaked token rotated with SIGHUP must stop working at once)."""
        built = Access.build(
            inventory.config.http.token,
            parse_listen(self._listen)[0],
            inventory.config.http.allowed_hosts,
            self._machine_names,
        )
        self.access.token, self.access.hosts = built.token, built.hosts

    def _public_url(self) -> str:
        """Where people reach this netmon (alert links); the listen address as best guess."""
        host, port = parse_listen(self._listen)
        if host in ("0.0.0.0", "::"):
            host = socket.gethostname()
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def _degraded(self, target_id: str) -> bool:
        return self.alerting is not None and self.alerting.degraded(target_id)

    def is_ready(self) -> bool:
        return self._ready

    def stop(self) -> None:
        self._stop.set()

    async def run(self, *, on_ready: Callable[[Service], Awaitable[None]] | None = None) -> None:
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        try:
            await self._start()
            if on_ready is not None:
                await on_ready(self)
            await self._stop.wait()
        finally:
            self._ready = False
            for sig in (*STOP_SIGNALS, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            await self._shutdown()

    def _alert_db_path(self) -> Path:
        if self._alert_db is not None:
            return self._alert_db
        return alert_database_path(
            self.inventory.config.alerting.database, self._config_path, os.environ
        )

    def _meeting_db_path(self) -> Path:
        return self._state_path(self.inventory.config.meeting_record.database)

    def _state_path(self, name: str) -> Path:
        """Beside the alert database: the same state directory (an explicit alert database,
        the demo's, takes the file's name into its directory)."""
        if self._alert_db is not None and not Path(name).is_absolute():
            return self._alert_db.parent / Path(name).name
        return alert_database_path(name, self._config_path, os.environ)

    async def _start_availability(self) -> list[web.RouteDef]:
        config = self.inventory.config.availability
        if not config.enabled:
            return []
        availability = Availability(
            store=self.store,
            inventory=lambda: self.inventory,
            path=self._state_path(config.database),
            reports=self._state_path(config.reports) if config.reports else None,
            alerts=self.alerting.engine.tracked if self.alerting is not None else None,
            meeting_record=lambda: self.meetings.db if self.meetings is not None else None,
            silences=lambda: (
                self.alerting.engine.silences.values() if self.alerting is not None else ()
            ),
        )
        try:
            await availability.start()
        except Exception:  # the journal is worth less than the monitoring: run without it
            log.exception("availability journal not started")
            await availability.close()
            return []
        self.availability = availability
        if self.alerting is not None and config.degraded:
            availability.listen_to(self.alerting.engine)
        return availability.routes()

    async def _start(self) -> None:
        self.store.apply_inventory(self.inventory)
        self._machine_names = await asyncio.to_thread(machine_names)
        self._apply_access(self.inventory)
        routes = list(self._extra_routes)
        if self.inventory.config.alerting.enabled:
            self.alerting = Alerting(
                store=self.store,
                inventory=self.inventory,
                db_path=self._alert_db_path(),
                sinks=lambda active: build_sinks(
                    self.inventory,
                    generator_url=self._public_url() + "/api/v1/alerts",
                    active=active,
                ),
            )
            await self.alerting.start()
            routes += alert_routes(self.alerting)
        trap_settings = self.inventory.config.trap_receiver
        if trap_settings is not None:
            engine_ids = self.alerting.engine_ids if self.alerting is not None else None
            self.traps = TrapIntake(trap_settings, self.inventory, self.store, engine_ids)
            await self.traps.start()
        self.checks = Checks(self.inventory, store=self.store, collectors=self._collectors)
        await self.checks.start()
        routes += self.checks.routes()
        if self.inventory.config.meeting_record.enabled:
            recorder = MeetingRecorder(
                self.store, self.inventory, MeetingDB(self._meeting_db_path())
            )
            try:
                await recorder.start()
            except Exception:  # the record is worth less than the monitoring: run without it
                log.exception("meeting record not started", extra={"path": recorder.db.path})
                await recorder.close()
            else:
                self.meetings = recorder
                routes += meeting_routes(recorder)
        routes += await self._start_availability()
        await self._start_collectors(self.inventory)
        self._scheduler = Scheduler(
            store=self.store,
            collectors=self._collectors,
            max_concurrency=self.inventory.config.scheduler.max_concurrency,
        )
        self._scheduler.apply(self.inventory)
        self._confirmer = Confirmer(self.store, self._collectors)
        self._call_poller = CallPoller(
            self.store,
            self._collectors,
            max_concurrency=self.inventory.config.scheduler.max_concurrency,
        )
        metrics_registry = build_registry(self.store)
        metrics_registry.register(ShardCollector(lambda: self.inventory))
        routes += shard_routes(lambda: self.inventory)
        if self.alerting is not None:
            metrics_registry.register(AlertingCollector(self.alerting))
        if self.traps is not None:
            metrics_registry.register(TrapReceiverCollector(self.traps.receiver.stats))
        app = build_app(
            store=self.store,
            registry=metrics_registry,
            is_ready=self.is_ready,
            degraded=self._degraded,
            extra_routes=routes,
            index_page=status_page(
                self.store,
                self.inventory.config.instance,
                degraded=self._degraded,
            ),
            access=self.access,
        )
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        host, port = parse_listen(self._listen)
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = self._runner.addresses
        bound_host, bound_port = sockets[0][0], sockets[0][1]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.http_url = f"http://{shown}:{bound_port}"
        self._ready = True
        heap.tune()
        freeze_long_lived()
        log.info(
            "netmon running",
            extra={
                "instance": self.inventory.config.instance,
                "targets": len(self.inventory.targets),
                "jobs": self._scheduler.job_count,
                "url": self.http_url,
            },
        )

    async def _start_collectors(self, inventory: Inventory) -> None:
        needed = {name for target in inventory.targets.values() for name, _ in target.probes}
        for name in sorted(needed - set(self._collectors)):
            # The first use of a probe imports its module (and transport): off the event loop.
            collector = (await asyncio.to_thread(registry.collector_class, name))()
            await collector.start()
            self._collectors[name] = collector

    async def _shutdown(self) -> None:
        if self._reloading is not None:
            self._reloading.cancel()
            await asyncio.gather(self._reloading, return_exceptions=True)
        if self._scheduler is not None:
            await self._scheduler.stop()
        if self._confirmer is not None:
            await self._confirmer.stop()
        if self._call_poller is not None:
            await self._call_poller.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        for collector in self._collectors.values():
            await collector.close()
        self._collectors.clear()
        if self.checks is not None:
            await self.checks.close()
        if self.meetings is not None:
            await self.meetings.close()
        if self.availability is not None:
            await self.availability.close()
        if self.traps is not None:
            await self.traps.close()
        if self.alerting is not None:
            await self.alerting.stop()
        log.info("netmon stopped")

    def request_reload(self) -> None:
        if self._reloading is not None and not self._reloading.done():
            # The file may have changed again since the running reload read it.
            self._reload_again = True
            return
        self._reloading = asyncio.create_task(self._reload_until_settled(), name="config-reload")

    async def _reload_until_settled(self) -> None:
        while True:
            self._reload_again = False
            try:
                await self.reload()
            except Exception:  # never let a reload bug end reloads for good
                self.store.stats.reloads["failure"] += 1
                log.exception("config reload failed")
            if not self._reload_again:
                return

    async def reload(self) -> bool:
        """Re-read the config file; apply it if valid, keep the running one if not."""
        if self._config_path is None:
            log.warning("reload requested but netmon runs without a config file")
            return False
        stats = self.store.stats
        try:
            inventory = await asyncio.to_thread(self._load, self._config_path)
        except ConfigError as exc:
            stats.reloads["failure"] += 1
            log.error(
                "config reload rejected; the running config stays",
                extra={
                    "config": str(self._config_path),
                    "problems": "; ".join(map(str, exc.problems)),
                },
            )
            return False
        except Exception:  # a loader bug must not leave netmon half-reloaded
            stats.reloads["failure"] += 1
            log.exception("config reload failed; the running config stays")
            return False
        old, new = self.inventory.config, inventory.config
        for name, before, after in (
            ("http.listen", old.http.listen, new.http.listen),
            (
                "scheduler.max_concurrency",
                old.scheduler.max_concurrency,
                new.scheduler.max_concurrency,
            ),
            ("instance", old.instance, new.instance),
            ("alerting.mqtt", old.alerting.mqtt, new.alerting.mqtt),
            ("alerting.alertmanager", old.alerting.alertmanager, new.alerting.alertmanager),
            ("alerting.webhooks", old.alerting.webhooks, new.alerting.webhooks),
            ("alerting.database", old.alerting.database, new.alerting.database),
            ("alerting.enabled", old.alerting.enabled, new.alerting.enabled),
            ("meeting_record.enabled", old.meeting_record.enabled, new.meeting_record.enabled),
            ("meeting_record.database", old.meeting_record.database, new.meeting_record.database),
            ("trap_receiver", old.trap_receiver, new.trap_receiver),
        ):
            if before != after:
                log.warning(f"{name} changed: it takes effect at the next restart")
        await self._start_collectors(inventory)
        added, removed, changed = self.store.apply_inventory(inventory)
        assert self._scheduler is not None
        self._scheduler.apply(inventory)
        if self._call_poller is not None:
            self._call_poller.apply()
        if self.alerting is not None:
            self.alerting.apply_inventory(inventory)
        if self.checks is not None:
            self.checks.apply_inventory(inventory)
        if self.meetings is not None:
            self.meetings.apply_inventory(inventory)
        if self.availability is not None:
            await self.availability.reload(inventory)
        if self.traps is not None:
            self.traps.apply_inventory(inventory)
        self._apply_access(inventory)
        self.inventory = inventory
        # The old inventory's cycles were frozen with it: let one collection see them.
        gc.unfreeze()
        freeze_long_lived()
        stats.reloads["success"] += 1
        log.info(
            "config reloaded",
            extra={
                "added": len(added),
                "removed": len(removed),
                "changed": len(changed),
                "targets": len(inventory.targets),
            },
        )
        return True
