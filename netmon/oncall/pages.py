"""A page as the alert database keeps it until its channel has it (JSON)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from netmon.alerting.model import AlertEvent
from netmon.channels.base import Page, PageKind
from netmon.config.alerting import Language


def page_to_json(page: Page) -> dict[str, Any]:
    return {
        "page_id": page.page_id,
        "channel": page.channel,
        "recipient": page.recipient,
        "kind": page.kind.value,
        "events": [event.to_json() for event in page.events],
        "language": page.language,
        "created_at": page.created_at,
        "step": page.step,
        "person": page.person,
        "acknowledged_by": page.acknowledged_by,
        "status_url": page.status_url,
        "extra": dict(page.extra),
    }


def page_from_json(data: Mapping[str, Any]) -> Page:
    language = str(data["language"])
    if language not in ("en", "vi"):
        raise ValueError(f"a page in an unknown language {language!r}")
    return Page(
        page_id=str(data["page_id"]),
        channel=str(data["channel"]),
        recipient=str(data["recipient"]),
        kind=PageKind(data["kind"]),
        events=tuple(AlertEvent.from_json(event) for event in data["events"]),
        language=cast(Language, language),
        created_at=float(data["created_at"]),
        step=int(data.get("step", 0)),
        person=str(data.get("person", "")),
        acknowledged_by=str(data.get("acknowledged_by", "")),
        status_url=str(data.get("status_url", "")),
        extra={str(k): str(v) for k, v in dict(data.get("extra", {})).items()},
    )
