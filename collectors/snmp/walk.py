"""The column walk of SNMP tables, written once, whichever path carries its requests.

A path (our codec's `SnmpClient` for v1/v2c, pysnmp's `V3Session` for v3) only says how to ask
for the successors of a list of OIDs (`next_varbinds`: GETBULK, or GETNEXT for v1);
`ColumnWalker.walk_columns` turns those answers into tables. A walk stops at the end of each
column's subtree, at endOfMibView, at a non-increasing OID (a broken agent) and at a row cap.

This module does no I/O of its own and must not import anything from the exporter, alerting or
MQTT.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from collectors.snmp.codec import EXCEPTIONS, OID, Tag, VarBind

AgentT = TypeVar("AgentT")

Clock = tuple[OID, frozenset[int]]
"""sysUpTime's OID (without .0) and the positions of the columns whose values it times."""


@dataclass(frozen=True, slots=True)
class TableResult:
    columns: list[dict[OID, VarBind]]  # per requested column: row index -> value
    truncated: str | None = None
    ticks: list[dict[OID, int]] = field(default_factory=list)  # per column: row -> sysUpTime


class ColumnWalker(Generic[AgentT]):
    """What a request path inherits: the column walk over its own `next_varbinds`."""

    async def next_varbinds(
        self, agent: AgentT, oids: list[OID], *, non_repeaters: int, max_repetitions: int
    ) -> list[VarBind]:
        """The successors of `oids` (the first `non_repeaters` once), row by row."""
        raise NotImplementedError

    async def walk_columns(
        self,
        agent: AgentT,
        columns: Sequence[OID],
        *,
        max_repetitions: int = 25,
        max_rows: int = 10_000,
        clock: Clock | None = None,
    ) -> TableResult:
        """Walk several table columns side by side, one request per step.

        Returns each column's values by row index (the OID suffix after the column). A column
        the agent lacks comes back empty; the others are still read.

        With `clock` (sysUpTime's OID without the .0, and the positions of the columns to
        stamp), every request also asks for sysUpTime as a non-repeater, and the values of those
        columns are stamped with the agent's uptime of the response that brought them: rates
        then use the agent's time of the very reading, retries or not.
        """
        last: list[OID] = list(columns)
        done = [False] * len(columns)
        values: list[dict[OID, VarBind]] = [{} for _ in columns]
        widths = [len(root) for root in columns]
        steps = [0] * len(columns)
        truncated: str | None = None
        end_of_view, exceptions = Tag.END_OF_MIB_VIEW, EXCEPTIONS
        times: list[dict[OID, int]] = [{} for _ in columns]
        prefix = [clock[0]] if clock is not None else []
        stamped = clock[1] if clock is not None else frozenset()
        while not all(done):
            active = [i for i, finished in enumerate(done) if not finished]
            varbinds = await self.next_varbinds(
                agent,
                prefix + [last[i] for i in active],
                non_repeaters=len(prefix),
                max_repetitions=max_repetitions,
            )
            stamp: int | None = None
            if clock is not None and varbinds:
                first, varbinds = varbinds[0], varbinds[1:]
                if first.tag == Tag.TIMETICKS and isinstance(first.value, int):
                    stamp = first.value
            if not varbinds:
                break
            width = len(active)
            for position, varbind in enumerate(varbinds):
                column = active[position % width]
                if done[column]:
                    continue
                oid = varbind.oid
                cut = widths[column]
                if varbind.tag == end_of_view or oid[:cut] != columns[column]:
                    done[column] = True
                    continue
                if oid <= last[column]:
                    done[column] = True
                    truncated = "non-increasing OID"
                    continue
                last[column] = oid
                rows = values[column]
                steps[column] += 1
                if varbind.tag not in exceptions:
                    key = oid[cut:]
                    rows[key] = varbind
                    if stamp is not None and column in stamped:
                        times[column][key] = stamp
                # Steps, not rows: an agent answering noSuchInstance forever must end too.
                if steps[column] >= max_rows:
                    done[column] = True
                    truncated = "row cap"
        return TableResult(columns=values, truncated=truncated, ticks=times)
