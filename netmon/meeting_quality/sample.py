"""One room's sample from what the store knows of it now: pure, no I/O.

The scores are `netmon.call_quality`'s, the same the call metrics and the call-quality alerts
use; the path figures are netmon's own echoes to the site (the RTT the E-model counts, the
loss CallQualityDegraded's hint compares with the call's).
"""

from __future__ import annotations

from collections.abc import Iterable

from netmon.call_quality import path_loss, stream_score
from netmon.meeting_quality.model import RoomSample
from netmon.state import TargetState


def in_call(state: TargetState) -> bool:
    """Whether the room says it is in a call (or reports a call's streams)."""
    view = state.endpoint_view()
    status = view.status if view is not None else None
    return status is not None and bool(status.calls or status.streams)


def _worst(values: Iterable[float | None], *, low: bool) -> float | None:
    known = [v for v in values if v is not None]
    if not known:
        return None
    return min(known) if low else max(known)


def sample_room(state: TargetState, now: float, pings: tuple[int, int] | None = None) -> RoomSample:
    """The room now; `pings` (sent, lost) netmon's echoes to it since the previous sample."""
    rtt = state.path_rtt
    view = state.endpoint_view()
    status = view.status if view is not None else None
    streams = status.streams if status is not None else ()
    scores = [(stream, stream_score(stream, rtt)) for stream in streams]

    def mos(direction: str, media: str) -> float | None:
        return _worst(
            (
                score.mos
                for stream, score in scores
                if score is not None and stream.direction == direction and stream.media == media
            ),
            low=True,
        )

    return RoomSample(
        room=state.target.id,
        t=now,
        in_call=in_call(state),
        mos_rx=mos("rx", "audio"),
        mos_tx=mos("tx", "audio"),
        loss=_worst((s.loss_ratio for s in streams), low=False),
        jitter=_worst((s.jitter for s in streams), low=False),
        video=mos("rx", "video"),
        path_rtt=rtt,
        path_loss=path_loss(state),
        path_sent=None if pings is None else pings[0],
        path_lost=None if pings is None else pings[1],
    )
