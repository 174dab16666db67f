"""The column walk against the walk it replaced: same tables, same stamps, same reason to stop.

`walk_columns` reads a GETBULK answer column by column (every width-th varbind) and tests "still
under the column, and past the last OID" with two tuple comparisons. The walk before it read
the answer varbind by varbind and sliced each OID; it is kept here, verbatim in substance, as
the reference. Agents are generated, broken ones included: OIDs that go back, repeat, leave the
column, land on its root or its sibling, endOfMibView, noSuchInstance forever, short answers.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.snmp.codec import EXCEPTIONS, OID, Tag, VarBind
from collectors.snmp.walk import Clock, ColumnWalker, TableResult

ENTRY = (1, 3, 6, 1, 2, 1, 2, 2, 1)
UPTIME = (1, 3, 6, 1, 2, 1, 1, 3)


class Scripted(ColumnWalker[None]):
    """An agent that answers each request with the next of its scripted answers."""

    def __init__(self, answers: list[list[VarBind]]) -> None:
        self.answers = list(answers)

    async def next_varbinds(
        self, agent: None, oids: list[OID], *, non_repeaters: int, max_repetitions: int
    ) -> list[VarBind]:
        return self.answers.pop(0) if self.answers else []


async def reference_walk(
    answers: list[list[VarBind]], columns: Sequence[OID], max_rows: int, clock: Clock | None
) -> TableResult:
    """The column walk as it was before it read column by column."""
    agent = Scripted(answers)
    last: list[OID] = list(columns)
    done = [False] * len(columns)
    values: list[dict[OID, VarBind]] = [{} for _ in columns]
    steps = [0] * len(columns)
    truncated: str | None = None
    times: list[dict[OID, int]] = [{} for _ in columns]
    prefix = [clock[0]] if clock is not None else []
    stamped = clock[1] if clock is not None else frozenset()
    while not all(done):
        active = [i for i, finished in enumerate(done) if not finished]
        varbinds = await agent.next_varbinds(
            None, prefix + [last[i] for i in active], non_repeaters=len(prefix), max_repetitions=5
        )
        stamp: int | None = None
        if clock is not None and varbinds:
            first, varbinds = varbinds[0], varbinds[1:]
            if first.tag == Tag.TIMETICKS and isinstance(first.value, int):
                stamp = first.value
        if not varbinds:
            break
        for position, varbind in enumerate(varbinds):
            column = active[position % len(active)]
            if done[column]:
                continue
            oid, cut = varbind.oid, len(columns[column])
            if varbind.tag == Tag.END_OF_MIB_VIEW or oid[:cut] != columns[column]:
                done[column] = True
                continue
            if oid <= last[column]:
                done[column] = True
                truncated = "non-increasing OID"
                continue
            last[column] = oid
            steps[column] += 1
            if varbind.tag not in EXCEPTIONS:
                values[column][oid[cut:]] = varbind
                if stamp is not None and column in stamped:
                    times[column][oid[cut:]] = stamp
            if steps[column] >= max_rows:
                done[column] = True
                truncated = "row cap"
    return TableResult(columns=values, truncated=truncated, ticks=times)


COLUMNS = [(*ENTRY, 10), (*ENTRY, 16), (*ENTRY, 7)]
# OIDs near the columns, where the walk has decisions to make: rows, the roots themselves,
# the next siblings and their rows, a parent, and something far away.
NEAR = st.sampled_from([*COLUMNS, (*ENTRY, 11), (*ENTRY, 17), (*ENTRY, 8), ENTRY, (1, 3, 6, 2)])
OIDS = st.one_of(
    st.tuples(NEAR, st.lists(st.integers(0, 6), max_size=2)).map(lambda p: (*p[0], *p[1])),
    NEAR,
)
TAGS = st.sampled_from([Tag.COUNTER32] * 4 + [Tag.INTEGER, Tag.END_OF_MIB_VIEW,
                                               Tag.NO_SUCH_INSTANCE])  # fmt: skip
VARBINDS = st.builds(lambda oid, tag, value: VarBind(oid, tag, None if tag in EXCEPTIONS or
                                                     tag == Tag.END_OF_MIB_VIEW else value),
                     OIDS, TAGS, st.integers(0, 9))  # fmt: skip
CLOCK = st.one_of(
    st.builds(lambda ticks: VarBind((*UPTIME, 0), Tag.TIMETICKS, ticks), st.integers(0, 99)),
    st.just(VarBind((*UPTIME, 0), Tag.NO_SUCH_OBJECT, None)),
)


def _increasing(columns: list[OID], rows: int, width: int) -> list[list[VarBind]]:
    """A well-behaved agent's answers: `rows` rows per column, `width` rows per answer, then
    the end of the MIB view."""
    answers: list[list[VarBind]] = [
        [VarBind((*column, row), Tag.COUNTER32, row)
         for row in range(first, min(first + width, rows + 1)) for column in columns]
        for first in range(1, rows + 1, width)
    ]  # fmt: skip
    return [*answers, [VarBind((*column, 1), Tag.END_OF_MIB_VIEW, None) for column in columns]]


@settings(max_examples=600, deadline=None)
@given(
    st.data(),
    st.integers(1, 3),
    st.integers(1, 6),
    st.booleans(),
)
async def test_the_walk_reads_what_the_reference_reads(
    data: st.DataObject, width: int, max_rows: int, timed: bool
) -> None:
    columns = COLUMNS[:width]
    answers = data.draw(st.lists(st.lists(VARBINDS, max_size=8), max_size=5))
    if timed:
        answers = [[data.draw(CLOCK), *answer] for answer in answers]
    clock = (UPTIME, frozenset({0, 2})) if timed else None
    expected = await reference_walk(answers, columns, max_rows, clock)
    got = await Scripted(answers).walk_columns(None, columns, max_rows=max_rows, clock=clock)
    assert got == expected


@pytest.mark.parametrize("rows", [0, 1, 7, 30])
async def test_a_healthy_table_is_read_whole_and_in_order(rows: int) -> None:
    answers = _increasing(COLUMNS, rows, 4)
    result = await Scripted(answers).walk_columns(None, COLUMNS)
    assert result.truncated is None
    for column, values in zip(COLUMNS, result.columns, strict=True):
        assert list(values) == [(row,) for row in range(1, rows + 1)]
        assert all(vb.oid == (*column, row) for (row,), vb in values.items())
    assert result == await reference_walk(answers, COLUMNS, 10_000, None)


A, B = COLUMNS[0], COLUMNS[1]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        # B goes back at its first varbind (position 1), A hits the cap later (position 2).
        ([VarBind((*A, 1), Tag.COUNTER32, 1), VarBind(B, Tag.COUNTER32, 1),
          VarBind((*A, 2), Tag.COUNTER32, 2)], "row cap"),
        # A hits the cap at position 2, B goes back after it (position 3).
        ([VarBind((*A, 1), Tag.COUNTER32, 1), VarBind((*B, 1), Tag.COUNTER32, 1),
          VarBind((*A, 2), Tag.COUNTER32, 2), VarBind((*B, 1), Tag.COUNTER32, 1)],
         "non-increasing OID"),
    ],
    ids=["cap-after-going-back", "going-back-after-cap"],
)  # fmt: skip
async def test_of_two_stops_in_one_answer_the_later_names_the_reason(
    answer: list[VarBind], reason: str
) -> None:
    result = await Scripted([answer]).walk_columns(None, [A, B], max_rows=2)
    assert result.truncated == reason
    assert result == await reference_walk([answer], [A, B], 2, None)
