"""Alerts: rules evaluated on the state store, their lifecycle, and delivery to sinks."""
