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
            offset = 0
            if clock is not None and varbinds:
                first, offset = varbinds[0], 1
                if first.tag == Tag.TIMETICKS and isinstance(first.value, int):
                    stamp = first.value
            if len(varbinds) <= offset:
                break
            width = len(active)
            # Where in the response the walk was last cut short: with several columns cut
            # in one response, the reason kept is that of the latest varbind, as read in order.
            cut_at = -1
            # Column by column (a GETBULK answer is row after row of the active columns, so
            # column j's successors are every width-th varbind): each column's state stays in
            # local names for its whole run instead of being looked up per varbind.
            for j, column in enumerate(active):
                previous = last[column]
                # An OID is under the column's root exactly when it sorts between the root and
                # the root's next sibling: two tuple comparisons, no slice to build, and they
                # also prove the OID increased, since `previous` never sorts below the root.
                root = columns[column]
                sibling = (*root[:-1], root[-1] + 1)
                cut = widths[column]
                rows = values[column]
                stamps = times[column] if stamp is not None and column in stamped else None
                tick = 0 if stamp is None else stamp
                step = first_step = steps[column]
                for varbind in varbinds[offset + j :: width]:
                    oid, tag, _ = varbind
                    if tag == end_of_view:
                        done[column] = True
                        break
                    if not previous < oid < sibling:
                        done[column] = True
                        if oid[:cut] == root:  # under the root, yet not past the last one
                            position = j + (step - first_step) * width
                            if position > cut_at:
                                cut_at, truncated = position, "non-increasing OID"
                        break
                    previous = oid
                    step += 1
                    if tag not in exceptions:
                        key = oid[cut:]
                        rows[key] = varbind
                        if stamps is not None:
                            stamps[key] = tick
                    # Steps, not rows: an agent answering noSuchInstance forever must end too.
                    if step >= max_rows:
                        done[column] = True
                        position = j + (step - 1 - first_step) * width
                        if position > cut_at:
                            cut_at, truncated = position, "row cap"
                        break
                last[column] = previous
                steps[column] = step
        return TableResult(columns=values, truncated=truncated, ticks=times)
