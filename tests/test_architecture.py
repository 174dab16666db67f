"""The structure docs/architecture.md describes, kept true: which package may import which,
no import circles, modules small enough to read, and a config loader that stays light.

These read the source (ast) rather than trusting a convention: a new arrow the wrong way fails
here with the modules it joins.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("netmon", "collectors", "netmon_lab", "dashboards")
MAX_LINES = 500
ENGINE_MAX_LINES = 400
# Where the project's workplace kept its notes, spelled so that a grep for them finds no hit here.
OUTSIDE_MARKERS = ("../" + "shared", "shared" + "/DESIGN", "/work/" + "shared")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    found = {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert "netmon.service" in found  # the walk saw the tree
    assert "collectors.base" in found
    return found


MODULES = _modules()


def _imported(module: str, path: Path) -> Iterator[str]:
    """Every module `module` imports, at any level (lazy and TYPE_CHECKING imports count: a
    circle through them is still a circle for a reader)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                stem = f"{base}.{node.module}" if node.module else base
            else:
                stem = node.module or ""
            for alias in node.names:
                candidate = f"{stem}.{alias.name}"
                yield candidate if candidate in MODULES else stem


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        edges = graph.setdefault(module, set())
        for name in _imported(module, path):
            # Importing a.b.c runs a/__init__ and a/b/__init__ too.
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):
                target = ".".join(parts[:depth])
                if target in MODULES and target != module and not module.startswith(target + "."):
                    edges.add(target)
    return graph


GRAPH = _graph()


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_was_read() -> None:
    assert "netmon.model" in GRAPH["netmon.state"]
    assert "collectors.base" in GRAPH["collectors.icmp"]


def test_no_import_circle() -> None:
    assert _circles(GRAPH) == []


def _arrows(source: str, target: str) -> list[str]:
    return sorted(
        f"{module} -> {imported}"
        for module, imports in GRAPH.items()
        if module == source or module.startswith(source + ".")
        for imported in imports
        if imported == target or imported.startswith(target + ".")
    )


@pytest.mark.parametrize(
    ("source", "target", "why"),
    [
        ("netmon.alerting.sinks", "collectors", "sinks deliver alerts; they know no collector"),
        ("netmon.config", "netmon.alerting", "the config schema is plain data"),
        ("netmon.checks", "netmon.alerting", "checks are told, through the store, not wired"),
        ("netmon.api", "netmon.alerting", "the API reads the store"),
        ("netmon.state", "netmon.alerting", "the store knows no consumer"),
        ("netmon.model", "collectors", "the vocabulary is the core's"),
        ("collectors", "netmon.alerting", "collectors know nothing of alerting"),
        ("collectors", "netmon.exporter", "collectors know nothing of Prometheus"),
        ("collectors", "netmon.state", "collectors return observations; the core folds them"),
        ("collectors", "netmon.config", "a collector is given a ProbeTarget, not the config"),
        ("netmon", "netmon_lab", "the service never imports the demo lab"),
        ("dashboards", "netmon.config.loader", "dashboards need thresholds and rules only"),
        ("dashboards", "netmon.alerting", "dashboards need the rules' schema, not the engine"),
    ],
)
def test_arrows_run_one_way(source: str, target: str, why: str) -> None:
    arrows = _arrows(source, target)
    if source == "netmon" and target == "netmon_lab":
        # The CLI's `netmon demo` is the one door into the lab, opened only for that command.
        arrows = [a for a in arrows if not a.startswith("netmon.cli ->")]
    assert arrows == [], why


def test_the_lab_uses_only_public_names_of_the_service() -> None:
    private = []
    lab = [m for m in MODULES if m.startswith("netmon_lab")]
    assert lab
    for module in lab:
        tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("netmon."):
                private += [f"{module}: {a.name}" for a in node.names if a.name.startswith("_")]
    assert private == []


def test_no_module_is_too_long_to_read() -> None:
    lengths = {
        module: len(path.read_text(encoding="utf-8").splitlines())
        for module, path in MODULES.items()
        if module.split(".")[0] in ("netmon", "collectors")
    }
    assert len(lengths) > 40
    assert {m: n for m, n in lengths.items() if n > MAX_LINES} == {}


def test_no_room_of_the_alert_engine_is_over_400_lines() -> None:
    # The engine and every module of alerting it is built from.
    rooms, todo = set(), ["netmon.alerting.engine"]
    while todo:
        module = todo.pop()
        if module not in rooms:
            rooms.add(module)
            todo += [m for m in GRAPH[module] if m.startswith("netmon.alerting.")]
    lengths = {m: len(MODULES[m].read_text(encoding="utf-8").splitlines()) for m in rooms}
    assert len(lengths) > 1
    assert {m: n for m, n in lengths.items() if n > ENGINE_MAX_LINES} == {}


def test_loading_the_config_loads_no_transport_or_snmp_library() -> None:
    probe = (
        "import sys, netmon.config\n"
        "heavy = {'aiomqtt', 'paho', 'pysnmp', 'aiohttp', 'cryptography'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == "[]"


def test_nothing_in_the_repository_points_outside_it() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.split()
    texts = [p for p in tracked if p.endswith((".py", ".md", ".yaml", ".yml", ".toml"))]
    assert "README.md" in texts
    outside = [
        f"{name}:{number}"
        for name in texts
        for number, line in enumerate(
            (ROOT / name).read_text(encoding="utf-8").splitlines(), start=1
        )
        if any(marker in line for marker in OUTSIDE_MARKERS)
    ]
    assert outside == []
