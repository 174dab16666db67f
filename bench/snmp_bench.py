"""SNMP benchmark: netmon against prometheus-snmp-exporter and snmpbulkwalk, same agent, same run.

An snmpd runs in a lab namespace that holds hundreds of veth interfaces (these machines have no
dummy-interface module), so its ifTable is large. Every tool reads the same IF-MIB columns that
netmon polls, many times at once, and is measured in CPU seconds per 10,000 varbinds:
- netmon: the real SnmpCollector, in a child process (v2c on netmon's codec, and v3 authPriv
  on pysnmp), its start-up objects frozen out of the GC's sight as `netmon run` does (a second
  v2c row without that: bench/snmp_load.py);
- prometheus-snmp-exporter (Debian's 0.21, with an if_mib module written here for the same
  columns), scraped concurrently; its CPU read from /proc;
- net-snmp's snmpbulkwalk, one process per walk.
Then a 215-target cycle against a CPE-sized agent (~200 varbinds each): wall time and CPU.

Run with `make bench` (root: namespaces). Figures depend on the machine; compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from collectors.snmp.codec import oid_to_text
from collectors.snmp.collector import COLUMNS

console = Console()
COMMUNITY = "bench-community"
V3 = {"user": "bench", "auth": "SHA-256", "auth_key": "bench-auth-key", "priv": "AES",
      "priv_key": "bench-priv-key"}  # fmt: skip


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_agent(
    lab: Any, workdir: Path, veth_pairs: int
) -> tuple[Any, subprocess.Popen[bytes], int]:
    """snmpd inside a lab namespace with `veth_pairs` extra veth pairs."""
    host = lab.add_host()
    if veth_pairs:
        batch = workdir / f"{host.namespace}.ip"
        batch.write_text(
            "".join(f"link add bv{i}a type veth peer name bv{i}b\n" for i in range(veth_pairs))
        )
        subprocess.run(["ip", "-n", host.namespace, "-batch", str(batch)], check=True)
    port = 1161
    conf = workdir / f"{host.namespace}-snmpd.conf"
    persist = workdir / f"{host.namespace}-persist"
    persist.mkdir()
    conf.write_text(
        f"agentAddress udp:{host.address}:{port}\n"
        f"rocommunity {COMMUNITY} default\n"
        f'createUser {V3["user"]} {V3["auth"]} "{V3["auth_key"]}" {V3["priv"]} "{V3["priv_key"]}"\n'
        f"rouser {V3['user']} priv\n"
        "dontLogTCPWrappersConnects yes\n"
    )
    process = subprocess.Popen(
        ["ip", "netns", "exec", host.namespace, "snmpd", "-f", "-Lf", "/dev/null", "-C", "-c",
         str(conf), "-p", str(workdir / f"{host.namespace}.pid")],
        env={**os.environ, "MIBS": "", "SNMP_PERSISTENT_DIR": str(persist)},
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while subprocess.run(
        ["snmpget", "-v2c", "-c", COMMUNITY, "-t", "0.3", "-r", "0", f"{host.address}:{port}",
         "1.3.6.1.2.1.1.3.0"], capture_output=True, env={**os.environ, "MIBS": ""},
    ).returncode:  # fmt: skip
        if time.monotonic() > deadline:
            raise RuntimeError("snmpd in the lab namespace did not answer")
        time.sleep(0.2)
    return host, process, port


def run_netmon(
    address: str, port: int, targets: int, v3: bool, freeze: bool = True
) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, "-m", "bench.snmp_load", address, str(port), str(targets),
         "v3" if v3 else "v2c", COMMUNITY, json.dumps(V3), "freeze" if freeze else "nofreeze"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    result: dict[str, float] = json.loads(output)
    return result


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def snmp_exporter_config(path: Path) -> None:
    index = [{"labelname": "ifIndex", "type": "gauge"}]
    metrics = []
    for name, oid in COLUMNS.items():
        text = name in ("descr", "name", "alias")
        metrics.append({
            "name": f"if_{name}", "oid": oid_to_text(oid), "indexes": index,
            "type": "DisplayString" if text else ("counter" if "octets" in name or "errors"
                                                  in name or "discards" in name else "gauge"),
            "help": name,
        })  # fmt: skip
    module = {
        "version": 2,
        "max_repetitions": 25,
        "timeout": "10s",
        "retries": 1,
        "auth": {"community": COMMUNITY},
        "walk": [oid_to_text(oid) for oid in COLUMNS.values()],
        "metrics": metrics,
    }
    path.write_text(yaml.safe_dump({"if_mib": module}))


def run_snmp_exporter(workdir: Path, address: str, port: int, scrapes: int) -> dict[str, float]:
    config = workdir / "snmp.yml"
    snmp_exporter_config(config)
    listen = _free_port()
    process = subprocess.Popen(
        ["prometheus-snmp-exporter", f"--config.file={config}",
         f"--web.listen-address=127.0.0.1:{listen}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{listen}/snmp?module=if_mib&target={address}:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{listen}/", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        urllib.request.urlopen(url, timeout=30).read()  # warm up

        def scrape(_: int) -> int:
            body = urllib.request.urlopen(url, timeout=60).read().decode()
            for line in body.splitlines():
                if line.startswith("snmp_scrape_pdus_returned "):
                    return int(float(line.split()[1]))
            raise RuntimeError("no snmp_scrape_pdus_returned in the scrape")

        cpu_before = _proc_cpu(process.pid)
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=min(scrapes, 64)) as pool:
            varbinds = sum(pool.map(scrape, range(scrapes)))
        wall = time.monotonic() - started
        cpu = _proc_cpu(process.pid) - cpu_before
    finally:
        process.terminate()
        process.wait(timeout=10)
    return {"varbinds": varbinds, "cpu_seconds": cpu, "wall_seconds": wall}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_snmpbulkwalk(address: str, port: int, walks: int) -> dict[str, float]:
    before = _children_cpu()
    started = time.monotonic()
    varbinds = 0
    for _ in range(walks):
        for oid in COLUMNS.values():
            output = subprocess.run(
                ["snmpbulkwalk", "-v2c", "-c", COMMUNITY, "-Cr25", "-On", "-Oq",
                 f"{address}:{port}", oid_to_text(oid)],
                capture_output=True, text=True, env={**os.environ, "MIBS": ""},
            ).stdout  # fmt: skip
            varbinds += sum(1 for line in output.splitlines() if line.startswith("."))
    return {"varbinds": varbinds, "cpu_seconds": _children_cpu() - before,
            "wall_seconds": time.monotonic() - started}  # fmt: skip


def per_10k(result: dict[str, float]) -> float:
    return (
        10_000 * result["cpu_seconds"] / result["varbinds"] if result["varbinds"] else float("nan")
    )


def main() -> None:
    from tests.lab import netlab

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--veth-pairs", type=int, default=150, help="size of the big agent")
    parser.add_argument("--polls", type=int, default=20, help="concurrent polls of the big agent")
    args = parser.parse_args()

    netlab.check_available()
    netlab.remove_stale()
    netlab.guard_lab_range()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        lab = netlab.NetLab(workdir=workdir)
        agents: list[subprocess.Popen[bytes]] = []
        try:
            with console.status("starting snmpd in lab namespaces"):
                big, process, port = start_agent(lab, workdir, args.veth_pairs)
                agents.append(process)
                small, process, small_port = start_agent(lab, workdir, 5)
                agents.append(process)
            with console.status("netmon v2c"):
                results["netmon v2c"] = run_netmon(big.address, port, args.polls, v3=False)
                results["netmon v2c, no gc.freeze"] = run_netmon(
                    big.address, port, args.polls, v3=False, freeze=False
                )
            with console.status("netmon v3 authPriv"):
                results["netmon v3 authPriv"] = run_netmon(
                    big.address, port, max(2, args.polls // 5), v3=True
                )
            with console.status("prometheus-snmp-exporter"):
                results["snmp_exporter"] = run_snmp_exporter(workdir, big.address, port, args.polls)
            with console.status("snmpbulkwalk"):
                results["snmpbulkwalk"] = run_snmpbulkwalk(
                    big.address, port, max(2, args.polls // 5)
                )
            with console.status("215-target cycle"):
                results["cycle netmon"] = run_netmon(small.address, small_port, 215, v3=False)
                results["cycle snmp_exporter"] = run_snmp_exporter(
                    workdir, small.address, small_port, 215
                )
        finally:
            for process in agents:
                subprocess.run(["kill", str(process.pid)], check=False)
                process.wait(timeout=10)
            lab.close()

    reference = per_10k(results["snmp_exporter"])
    table = Table(title=f"IF-MIB polling, agent with {2 * args.veth_pairs + 2} interfaces")
    for column in (
        "tool",
        "varbinds",
        "CPU s",
        "wall s",
        "CPU s / 10k varbinds",
        "vs snmp_exporter",
    ):
        table.add_column(column, justify="right")
    names = ("netmon v2c", "netmon v2c, no gc.freeze", "netmon v3 authPriv", "snmp_exporter",
             "snmpbulkwalk")  # fmt: skip
    for name in names:
        r = results[name]
        table.add_row(
            name,
            f"{r['varbinds']:.0f}",
            f"{r['cpu_seconds']:.3f}",
            f"{r['wall_seconds']:.2f}",
            f"{per_10k(r):.3f}",
            f"{per_10k(r) / reference:.2f}x",
        )
    console.print(table)
    cycle, exporter_cycle = results["cycle netmon"], results["cycle snmp_exporter"]
    console.print(
        f"215 targets at once (~{cycle['varbinds'] / 215:.0f} varbinds each): netmon "
        f"{cycle['wall_seconds']:.2f} s wall, {cycle['cpu_seconds']:.2f} CPU-s; snmp_exporter "
        f"{exporter_cycle['wall_seconds']:.2f} s wall, {exporter_cycle['cpu_seconds']:.2f} CPU-s"
    )
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"snmp-{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
