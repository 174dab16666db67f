"""The config file, in pieces that each import only what they need.

- `schema`: what the file may contain (`Config` and its sections), strictly.
- `thresholds`: the quality limits shared by rules, readiness checks and dashboards.
- `rules`, `alerting`, `sinks`: the `alerting:` section (rules and their defaults, silences,
  the MQTT, webhook and Alertmanager settings), as plain models.
- `errors`: `ConfigProblem` and `ConfigError`, every problem as `path.to.field: what is wrong`.
- `probes`: each target's probe settings, its overrides over the probe's defaults.
- `loader`: YAML in, every problem at once, a `netmon.inventory.Inventory` out.

This file imports nothing, so that reading one piece (the dashboards read `rules` and
`thresholds`) does not load the others. No piece may import alerting, a sink or a collector's
transport: `netmon validate` and `netmon dashboards build` load only these.
"""
