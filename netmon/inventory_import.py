"""Turn a spreadsheet export (CSV) of endpoints into a netmon config.

Each row becomes a target of kind `endpoint`. `id` and `address` are the only required columns;
`name`, `site`, `district` and `group` fill the target's fields (`group` falls back to `level`,
`site` to `name`), and every other non-empty column is kept as a label. Bad rows are reported
with their line number, and nothing is written unless every row is good.

Two options turn on the rooms' own status. `api_credential` names the credential netmon reads
the codecs' APIs with: rows whose `vendor` is Cisco or Poly (Polycom) then get that vendor and
its status probe, and the config gets the credential (its password from the environment
variable NETMON_API_PASSWORD). `registrar` is the address of the SIP registrar (Kamailio) every
room registers to: the config gets it as a target, and each room's address of record is its
`aor` column, else its `sip_uri`, else its id.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from netmon.config.errors import ConfigError
from netmon.config.loader import load_data

REQUIRED_COLUMNS = ("id", "address")
FIELD_COLUMNS = ("name", "site", "district", "group")
VENDORS = {"cisco": "cisco", "poly": "poly", "polycom": "poly"}
REGISTRAR_ID = "registrar"
API_PASSWORD_VARIABLE = "NETMON_API_PASSWORD"  # noqa: S105 - a variable name


@dataclass(frozen=True, slots=True)
class RowProblem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class CsvImportError(Exception):
    def __init__(self, problems: list[RowProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


def _label_key(column: str) -> str:
    key = re.sub(r"[^a-z0-9_]+", "_", column.strip().lower()).strip("_")
    if not key or key[0].isdigit():
        key = f"col_{key}"
    return key


def _sniff_dialect(text: str) -> type[csv.Dialect]:
    """Excel's quoting with the header's delimiter (',' ';' or tab). Only the delimiter is
    sniffed: from a header line, whose names have no quotes, the sniffer also guessed
    doublequote=False, so a quoted cell with doubled quotes (UBND xã ""Đông Sơn"") kept them
    doubled and a delimiter inside it split the row."""
    try:
        found = csv.Sniffer().sniff(text.splitlines()[0] if text else "", delimiters=",;\t")
    except csv.Error:
        return csv.excel

    class Dialect(csv.excel):
        delimiter = found.delimiter

    return Dialect


def _rows(reader: Any) -> Iterator[list[str]]:
    """The reader's rows; a row csv cannot read (a field over its limit, usually after an
    unclosed quote) ends the import as a bad row instead of escaping as a csv.Error."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise CsvImportError(
                [RowProblem(reader.line_num, f"not readable as CSV ({exc}); an unclosed quote?")]
            ) from None
        yield row


def csv_to_config(
    text: str,
    *,
    instance: str = "netmon",
    api_credential: str | None = None,
    registrar: str | None = None,
) -> dict[str, Any]:
    """Build config data from CSV text; raise CsvImportError listing every bad row."""
    text = text.removeprefix("\ufeff")  # Excel writes a BOM in UTF-8 exports
    reader = csv.reader(io.StringIO(text, newline=""), _sniff_dialect(text))
    rows = _rows(reader)
    try:
        header = [column.strip() for column in next(rows)]
    except StopIteration:
        raise CsvImportError([RowProblem(1, "the file is empty")]) from None
    lowered = [column.lower() for column in header]
    missing = [column for column in REQUIRED_COLUMNS if column not in lowered]
    if missing:
        raise CsvImportError(
            [RowProblem(1, f"missing column {', '.join(repr(c) for c in missing)} in the header")]
        )

    problems: list[RowProblem] = []
    targets: list[dict[str, Any]] = []
    lines: list[int] = []
    first_line: dict[str, int] = {}
    for row in rows:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            problems.append(RowProblem(line, f"{len(row)} columns, the header has {len(header)}"))
            continue
        values = {lowered[i]: cell.strip() for i, cell in enumerate(row)}
        target_id = values["id"]
        if target_id in first_line:
            problems.append(
                RowProblem(
                    line, f"duplicate id {target_id!r} (first on line {first_line[target_id]})"
                )
            )
            continue
        first_line[target_id] = line
        target: dict[str, Any] = {"id": target_id, "address": values["address"], "kind": "endpoint"}
        for column in FIELD_COLUMNS:
            if values.get(column):
                target[column] = values[column]
        if "group" not in target and values.get("level"):
            target["group"] = values["level"]
        if "site" not in target and values.get("name"):
            target["site"] = values["name"]
        labels = {
            _label_key(header[i]): values[column]
            for i, column in enumerate(lowered)
            if column not in (*REQUIRED_COLUMNS, *FIELD_COLUMNS) and values[column]
        }
        if labels:
            target["labels"] = labels
        vendor = VENDORS.get(values.get("vendor", "").casefold())
        if api_credential is not None and vendor is not None:
            target["vendor"] = vendor
        if registrar is not None:
            target["registrar"] = REGISTRAR_ID
            aor = values.get("aor") or values.get("sip_uri")
            if aor:
                target["aor"] = aor
        targets.append(target)
        lines.append(line)

    data: dict[str, Any] = {"instance": instance, "targets": targets}
    checked = data
    if api_credential is not None:
        credential = {"user": "admin", "password": {"env": API_PASSWORD_VARIABLE}}
        data["credentials"] = {api_credential: credential}
        data["defaults"] = {
            "xapi": {"credential": api_credential},
            "poly": {"credential": api_credential},
        }
        # Checked with a stand-in password: the variable is set where netmon runs, not here.
        checked = {**data, "credentials": {api_credential: {**credential, "password": "-"}}}
    if registrar is not None:
        targets.insert(
            0,
            {
                "id": REGISTRAR_ID,
                "address": registrar,
                "kind": "service",
                "name": "SIP registrar",
                "probes": {"icmp": {}, "kamailio": {}},
            },
        )
        lines.insert(0, 0)
    try:
        load_data(checked)
    except ConfigError as exc:
        for problem in exc.problems:
            match = re.match(r"targets\[(\d+)\]\.?(.*)", problem.path)
            if match:
                row_index = int(match.group(1))
                field = match.group(2) or "row"
                problems.append(
                    RowProblem(
                        lines[row_index],
                        f"{field} {targets[row_index].get(field.split('.')[0], '')!r}: "
                        f"{problem.message}",
                    )
                )
            else:
                problems.append(RowProblem(0, str(problem)))
    if problems:
        raise CsvImportError(sorted(problems, key=lambda problem: problem.line))
    return data


def to_yaml(data: dict[str, Any]) -> str:
    header = (
        "# netmon config generated by `netmon inventory import`.\n"
        "# Check it with: netmon validate --config THIS_FILE\n"
    )
    return header + yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100)
