"""CSV import: the 215-row lab inventory round-trips with its Vietnamese names intact."""

from __future__ import annotations

import csv
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from netmon.config.loader import load_file
from netmon.inventory_import import CsvImportError, csv_to_config
from netmon_lab.demo import demo_endpoints_csv
from tests.helpers import netmon_command

# The lab's inventory, as the project keeps it; the demo ships a copy as package data.
LAB_CSV = Path(__file__).resolve().parent / "data" / "endpoints.csv"


def test_packaged_demo_data_is_the_lab_inventory() -> None:
    assert demo_endpoints_csv() == LAB_CSV.read_text(encoding="utf-8")


def test_import_round_trips_215_rows_with_names_intact(tmp_path: Path) -> None:
    source = tmp_path / "endpoints.csv"
    source.write_text(demo_endpoints_csv(), encoding="utf-8")
    output = tmp_path / "endpoints.yaml"
    result = subprocess.run(
        [*netmon_command(), "inventory", "import", str(source), "-o", str(output)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    inventory = load_file(output)

    with source.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 215
    assert len(inventory.targets) == 215
    for row in rows:
        target = inventory.targets[row["id"]]
        assert target.name == row["name"]
        assert target.address == row["address"]
        assert target.district == row["district"]
        assert target.kind == "endpoint"
        assert target.group == row["level"]
        labels = dict(target.labels)
        assert labels["vendor"] == row["vendor"]
        assert labels["sip_uri"] == row["sip_uri"]
    assert inventory.targets["ep-so-15"].name == "Sở Văn hóa, Thể thao và Du lịch"


def test_only_id_and_address_are_required() -> None:
    data = csv_to_config("id,address\nep-1,127.0.0.1\n")
    assert data["targets"] == [{"id": "ep-1", "address": "127.0.0.1", "kind": "endpoint"}]


def test_excel_bom_and_semicolons() -> None:
    data = csv_to_config("\ufeffid;address;name\nep-1;127.0.0.1;Xã Định Hòa, huyện Yên Định\n")
    assert data["targets"][0]["name"] == "Xã Định Hòa, huyện Yên Định"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "id,address,name\nep-1,127.0.0.1,A\nep-2,300.0.0.1,B\n",
            ["line 3: address '300.0.0.1': not an IP address or hostname"],
        ),
        (
            "id,address\nep-1,127.0.0.1\nep-1,127.0.0.2\n",
            ["line 3: duplicate id 'ep-1' (first on line 2)"],
        ),
        (
            'id,address,name\nep-1,127.0.0.1,"Sở Y tế, tỉnh"\nep-2,127.0.0.2\n',
            ["line 3: 2 columns, the header has 3"],
        ),
        (
            "id,address\nep 1,127.0.0.1\n,127.0.0.2\n",
            [
                "line 2: id 'ep 1': not usable as an id: use letters, digits, '.', '_' and '-', "
                "starting with a letter or digit, at most 128 characters (ids become label "
                "values and MQTT topic levels)",
                "line 3: id '': not usable as an id: use letters, digits, '.', '_' and '-', "
                "starting with a letter or digit, at most 128 characters (ids become label "
                "values and MQTT topic levels)",
            ],
        ),
        ("name,address\nA,127.0.0.1\n", ["line 1: missing column 'id' in the header"]),
        ("", ["line 1: the file is empty"]),
    ],
)
def test_bad_rows_are_reported_with_their_line(text: str, expected: list[str]) -> None:
    with pytest.raises(CsvImportError) as caught:
        csv_to_config(text)
    assert [str(problem) for problem in caught.value.problems] == expected


def test_bad_csv_writes_nothing(tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    source.write_text("id,address\nep-1,not an address\n", encoding="utf-8")
    output = tmp_path / "out.yaml"
    result = subprocess.run(
        [*netmon_command(), "inventory", "import", str(source), "-o", str(output)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert (
        f"{source}: line 2: address 'not an address': not an IP address or hostname"
        in result.stderr
    )
    assert not output.exists()


@pytest.mark.parametrize("where", ["header", "row"])
def test_a_field_over_csvs_limit_is_a_bad_row_not_a_crash(tmp_path: Path, where: str) -> None:
    huge = "x" * (128 * 1024 + 1)
    text = (
        f"id,address,name\nep-1,192.0.2.1,{huge}\n"
        if where == "row"
        else f'id,address,"{huge}\nep-1,192.0.2.1,a\n'
    )
    source = tmp_path / "inventory.csv"
    source.write_text(text, encoding="utf-8")
    output = tmp_path / "config.yaml"
    result = subprocess.run(
        [*netmon_command(), "inventory", "import", str(source), "-o", str(output)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "not readable as CSV (field larger than field limit (131072))" in result.stderr
    assert not output.exists()


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_doubled_quotes_in_a_cell_are_one_quote(delimiter: str) -> None:
    row = ["ep-1", "192.0.2.1", '"UBND xã ""Đông Sơn""; Thanh Hóa, tỉnh"']
    text = delimiter.join(["id", "address", "name"]) + "\n" + delimiter.join(row) + "\n"
    (target,) = csv_to_config(text)["targets"]
    assert target["name"] == 'UBND xã "Đông Sơn"; Thanh Hóa, tỉnh'


def test_import_with_an_api_credential_and_a_registrar_reads_the_rooms_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "endpoints.csv"
    source.write_text(demo_endpoints_csv(), encoding="utf-8")
    output = tmp_path / "rooms.yaml"
    result = subprocess.run(
        [*netmon_command(), "inventory", "import", str(source), "-o", str(output),
         "--api-credential", "codecs", "--registrar", "10.0.0.5"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "NETMON_API_PASSWORD" in output.read_text(encoding="utf-8")  # no password in it
    monkeypatch.setenv("NETMON_API_PASSWORD", "from-the-environment")
    targets = load_file(output).targets
    vendors = Counter(t.vendor for t in targets.values() if t.kind == "endpoint")
    # Cisco and Poly/Polycom rows read their API; the others are left as they were.
    assert vendors == {"cisco": 36, "poly": 107, "": 72}
    assert targets["ep-so-01"].status_probe() is not None
    assert targets["registrar"].address == "10.0.0.5"
    assert targets["ep-so-01"].registrar == "registrar"
    assert targets["ep-so-01"].aor == "sip:ep-so-01@vc.thanhhoa.example"  # its sip_uri
