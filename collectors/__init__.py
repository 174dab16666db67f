"""Collectors: one module per protocol, each turning a target into typed observations.

Collectors know nothing of Prometheus, alerting or MQTT; the core reaches them only through
`collectors.registry`.
"""
