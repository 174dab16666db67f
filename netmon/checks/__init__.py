"""Pre-meeting readiness: is each endpoint of a meeting good to go, and if not, why."""
