"""Where alerts go: MQTT, Alertmanager, webhooks. Each sink is delivered to by its own worker."""
