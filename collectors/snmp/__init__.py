"""SNMP polling: a lean codec and UDP client for the hot path, pysnmp for what it does best."""
