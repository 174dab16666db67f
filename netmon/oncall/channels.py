"""The channels `oncall.channels` asks for, built in one place (as the sinks' factory)."""

from __future__ import annotations

from netmon.channels.base import ActionHandler, Channel
from netmon.config.channels import EmailSettings, GatewaySettings, TelegramSettings
from netmon.config.oncall import OncallConfig


def build_channels(config: OncallConfig, *, on_action: ActionHandler) -> list[Channel]:
    from netmon.channels.email import EmailChannel
    from netmon.channels.gateway import GatewayChannel
    from netmon.channels.telegram import TelegramChannel

    channels: list[Channel] = []
    for settings in config.channels:
        if isinstance(settings, TelegramSettings):
            channels.append(TelegramChannel(settings, on_action))
        elif isinstance(settings, EmailSettings):
            channels.append(EmailChannel(settings))
        elif isinstance(settings, GatewaySettings):
            channels.append(GatewayChannel(settings))
    return channels
