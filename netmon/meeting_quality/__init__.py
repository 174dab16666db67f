"""The meeting quality record (issue 16): every room's call quality, every 10 s, through every
meeting, kept in a SQLite file of its own, served as JSON and as a post-meeting report.

- `model`: a recorded meeting, its rooms, one room's sample; meeting ids.
- `sample`: one room's sample from its state in the store (pure).
- `schedule`: the config's meetings in progress at a time (pure).
- `db`: the SQLite file, on one thread of its own.
- `recorder`: the sampling task, ad hoc meetings, the writer task.
- `summary`: a room's timeline summed up: mean and min MOS, poor minutes, where the fault lies.
- `report`: the one-page HTML report in English and Vietnamese.
- `api`: `/api/v1/meetings...`; `command`: `netmon meetings list|report`.
"""
