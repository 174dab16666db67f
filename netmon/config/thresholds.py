"""The quality limits shared by alert rules, readiness checks and the dashboards' levels.

A small piece of its own so that the dashboards and checks can read the defaults without the
loader. It must not import anything but pydantic and the core's vocabulary.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from netmon.model import Duration


class Thresholds(BaseModel):
    """Quality limits shared by alert rules and readiness checks.

    Defaults are the interactive-video profile: ITU-T G.114 and Cisco's AF41 guidance.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rtt_warn: Duration = Field(default=0.150, gt=0)
    rtt_bad: Duration = Field(default=0.300, gt=0)
    jitter_warn: Duration = Field(default=0.010, gt=0)
    jitter_bad: Duration = Field(default=0.030, gt=0)
    loss_warn: float = Field(default=0.001, ge=0, le=1)
    loss_bad: float = Field(default=0.01, ge=0, le=1)
    loss_critical: float = Field(default=0.05, ge=0, le=1)
