"""netmon self-monitoring: is netmon scraped, are its collectors and scheduler keeping up, do
its alerts reach their sinks."""

from __future__ import annotations

from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards.common import (
    ANY_IS_BAD,
    BYTES,
    COUNT,
    GREEN,
    PER_SECOND,
    RATIO,
    SECONDS,
    SELF_UID,
    UP_DOWN,
    label_variable,
    new_dashboard,
    panel,
    query,
    steps,
    tabulate,
    with_rows,
)

SELECTED = '{job=~"$job", instance=~"$instance"}'


def _selected(metric: str) -> str:
    return metric + SELECTED


def _process() -> list[stat.Panel | table.Panel | timeseries.Panel]:
    scraped = panel(
        stat.Panel(),
        "Scraped",
        "Whether Prometheus reached each netmon's /metrics at its last scrape.",
        query(_selected("up"), "{{instance}}"),
        width=6,
        height=5,
    )
    scraped.unit(COUNT).mappings(UP_DOWN).color_mode(cm.BigValueColorMode.BACKGROUND)
    build = panel(
        table.Panel(),
        "Version",
        "The netmon version each instance runs.",
        query(_selected("netmon_build_info"), instant=True),
        width=6,
        height=5,
    ).unit(COUNT)
    tabulate(build, {}, ["instance", "version"])
    build.override_by_name("Value", [dm.DynamicConfigValue(id_val="custom.hidden", value=True)])
    targets = panel(
        stat.Panel(),
        "Targets",
        "Targets in the inventory, by kind.",
        query(f"sum by (kind) ({_selected('netmon_targets')})", "{{kind}}"),
        width=6,
        height=5,
    )
    targets.unit(COUNT).thresholds(steps(base=GREEN))
    reloads = panel(
        stat.Panel(),
        "Config reloads in the time range",
        "SIGHUP reloads, by result: a failure keeps the old config running.",
        query(
            f"sum by (result) (increase({_selected('netmon_config_reloads_total')}[$__range]))",
            "{{result}}",
        ),
        width=6,
        height=5,
    )
    reloads.unit(COUNT).thresholds(steps(base=GREEN)).override_by_name(
        "failure", [dm.DynamicConfigValue(id_val="thresholds", value=ANY_IS_BAD.build())]
    )
    scrape = panel(
        timeseries.Panel(),
        "Scrape duration",
        "How long Prometheus took to scrape /metrics; it grows with the inventory.",
        query(_selected("scrape_duration_seconds"), "{{instance}}"),
        width=8,
    )
    scrape.unit(SECONDS).min(0)
    cpu = panel(
        timeseries.Panel(),
        "CPU",
        "Share of one core netmon's process uses.",
        query(f"rate({_selected('process_cpu_seconds_total')}[$__rate_interval])", "{{instance}}"),
        width=8,
    )
    cpu.unit(RATIO).min(0)
    memory = panel(
        timeseries.Panel(),
        "Memory",
        "Resident memory of netmon's process.",
        query(_selected("process_resident_memory_bytes"), "{{instance}}"),
        width=8,
    )
    memory.unit(BYTES).min(0)
    return [scraped, build, targets, reloads, scrape, cpu, memory]


def _collectors() -> list[timeseries.Panel]:
    graphs = []
    for title, description, expr, legend, unit_name, width in (
        (
            "Collector duration, p95",
            "How long one run of each collector takes (95th percentile).",
            "histogram_quantile(0.95, sum by (le, collector) (rate("
            f"{_selected('netmon_collector_duration_seconds_bucket')}[$__rate_interval])))",
            "{{collector}}",
            SECONDS,
            8,
        ),
        (
            "Collector runs",
            "Runs a second of each collector.",
            "sum by (collector) (rate("
            f"{_selected('netmon_collector_duration_seconds_count')}[$__rate_interval]))",
            "{{collector}}",
            PER_SECOND,
            8,
        ),
        (
            "Collector errors, by reason",
            "Failed runs a second, by collector and reason (timeout, refused, auth, ...): an "
            "unreachable target counts here as well as on its own dashboard.",
            "sum by (collector, reason) (rate("
            f"{_selected('netmon_collector_errors_total')}[$__rate_interval]))",
            "{{collector}} {{reason}}",
            PER_SECOND,
            8,
        ),
        (
            "Scheduler lag, p99",
            "How late runs start against their planned slot: a growing lag means netmon "
            "has more work than it can do on time.",
            "histogram_quantile(0.99, sum by (le, collector) (rate("
            f"{_selected('netmon_scheduler_lag_seconds_bucket')}[$__rate_interval])))",
            "{{collector}}",
            SECONDS,
            12,
        ),
        (
            "Age of the oldest result, per probe",
            "Seconds since the stalest target's last run of each probe finished.",
            f"max by (probe) ({_selected('netmon_probe_age_seconds')})",
            "{{probe}}",
            SECONDS,
            12,
        ),
    ):
        graph = panel(timeseries.Panel(), title, description, query(expr, legend), width=width)
        graphs.append(graph.unit(unit_name).min(0))
    return graphs


def _alerting() -> list[timeseries.Panel | stat.Panel]:
    notifications = panel(
        timeseries.Panel(),
        "Notifications, by sink and result",
        "Alert notifications a second handed to each sink: success, failure (to be "
        "retried), rejected, dropped.",
        query(
            "sum by (sink, result) (rate("
            f"{_selected('netmon_alert_notifications_total')}[$__rate_interval]))",
            "{{sink}} {{result}}",
        ),
        width=8,
    )
    notifications.unit(PER_SECOND).min(0)
    outbox = panel(
        timeseries.Panel(),
        "Outbox",
        "Notifications waiting for each sink; it drains when the sink is back.",
        query(
            f"sum by (sink, queue) ({_selected('netmon_alert_outbox_events')})",
            "{{sink}} {{queue}}",
        ),
        width=8,
    )
    outbox.unit(COUNT).min(0)
    firing = panel(
        timeseries.Panel(),
        "Alerts firing",
        "Alerts firing, by severity.",
        query(f"sum by (severity) ({_selected('netmon_alerts_active')})", "{{severity}}"),
        width=4,
    )
    firing.unit(COUNT).min(0)
    evaluation = panel(
        stat.Panel(),
        "Rule evaluation errors in the time range",
        "Alert rule evaluations that failed: a bug in netmon, to be reported.",
        query(f"sum(increase({_selected('netmon_alert_evaluation_errors_total')}[$__range]))"),
        width=4,
    )
    evaluation.unit(COUNT).thresholds(ANY_IS_BAD).color_mode(cm.BigValueColorMode.BACKGROUND)
    return [notifications, outbox, firing, evaluation]


def build() -> dm.Dashboard:
    board = (
        new_dashboard(
            SELF_UID,
            "netmon / Self-monitoring",
            "netmon's own health: scrapes, collectors, scheduler, alert delivery.",
        )
        .with_variable(
            label_variable(
                "job",
                "Job",
                "label_values(netmon_build_info, job)",
                description="Prometheus jobs that scrape netmon",
                # "All" is every job that has scraped a netmon, never `.*`: up, process_*
                # and scrape_duration_seconds exist for every job of the Prometheus.
                all_value=None,
            )
        )
        .with_variable(
            label_variable(
                "instance",
                "Instance",
                'label_values(netmon_build_info{job=~"$job"}, instance)',
                description="netmon instances (shards) of those jobs",
                # `.*` within netmon's jobs: a netmon down all along has no netmon_build_info
                # to be listed by, and must still show in "Scraped" as down.
            )
        )
    )
    return with_rows(
        board,
        (
            ("Process", _process()),
            ("Collectors and scheduler", _collectors()),
            ("Alerting", _alerting()),
        ),
    )
