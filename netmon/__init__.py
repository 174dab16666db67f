"""netmon: monitoring of a provincial telecom network and its video-conference endpoints."""

__version__ = "0.1.0"
