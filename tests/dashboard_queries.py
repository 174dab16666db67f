"""What Grafana and Prometheus would run from our dashboards and rules, for the no-dead-panel
test: every PromQL expression read from the dashboard JSON and the rule files (never typed in
a test), with template variables filled the way Grafana fills them, and alert expressions
turned into queries that return data whenever the alert can be judged.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dashboards import JSON_DIR
from tests.peers import Prometheus

# What Grafana puts for its interval macros; the test's Prometheus scrapes every 2 s.
MACROS = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m"}
LABEL_VALUES = re.compile(r"label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)")
QUERY_RESULT = re.compile(r"query_result\((?P<expr>.+)\)")
VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@dataclass(frozen=True)
class Expression:
    where: str  # "dashboard / panel" or "rules file / rule"
    expr: str


def load_dashboards(directory: Path = JSON_DIR) -> dict[str, dict[str, Any]]:
    """uid -> dashboard, from the JSON files."""
    boards = [json.loads(path.read_text(encoding="utf-8")) for path in directory.glob("*.json")]
    return {board["uid"]: board for board in boards}


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    for item in board.get("panels", []):
        yield item
        yield from item.get("panels", [])


def substitute(text: str, values: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name in MACROS:
            return MACROS[name]
        if name not in values:
            raise AssertionError(f"{text}: ${name} is no variable of the dashboard")
        return values[name]

    return VARIABLE.sub(value, text)


def _regex_escape(value: str) -> str:
    """Grafana's prometheusSpecialRegexEscape: backslashes doubled for the PromQL string."""
    value = value.replace("\\", "\\\\\\\\")
    return re.sub(r"[$^*{}\[\]'+?.()|]", lambda m: "\\\\" + m.group(0), value)


def grafana_value(variable: dict[str, Any], choices: list[str]) -> str:
    """What Grafana puts for the variable on a fresh load: "All" when the variable has it
    (its custom all value, or every choice), else the first choice; multi-value variables are
    regex-escaped and joined as `(a|b)`."""
    if variable.get("includeAll"):
        if variable.get("allValue"):
            return str(variable["allValue"])
        chosen = choices
    else:
        chosen = choices[:1]
    if variable.get("multi") or variable.get("includeAll"):
        escaped = [_regex_escape(choice) for choice in chosen]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
    return chosen[0].replace("\\", "\\\\").replace("'", "\\'")


def resolve_variables(
    prometheus: Prometheus, board: dict[str, Any], problems: list[str]
) -> tuple[dict[str, str], int]:
    """Each query variable's value, asking Prometheus as Grafana does for label_values(); the
    variables without choices go into `problems`. Returns the values and the calls made."""
    values: dict[str, str] = {}
    calls = 0
    for variable in board["templating"]["list"]:
        if variable["type"] == "datasource":
            continue
        match = LABEL_VALUES.fullmatch(variable["query"])
        if match:
            params = {}
            if match["selector"]:
                params["match[]"] = substitute(match["selector"], values)
            answer = prometheus.api(f"/api/v1/label/{match['label']}/values", params, method="GET")
            choices = sorted(answer.get("data") or [])
        else:
            match = QUERY_RESULT.fullmatch(variable["query"])
            assert match, (
                f"{board['title']}: ${variable['name']}: neither label_values() nor "
                f"query_result(): {variable}"
            )
            answer = prometheus.api("/api/v1/query", {"query": substitute(match["expr"], values)})
            series = answer.get("data", {}).get("result") or []
            choices = query_result_choices(variable, [item["metric"] for item in series])
        calls += 1
        if answer.get("status") != "success" or not choices:
            problems.append(f"{board['title']} / variable ${variable['name']}: no choices {answer}")
            values[variable["name"]] = "no-choice"
            continue
        values[variable["name"]] = grafana_value(variable, choices)
    return values, calls


def query_result_choices(variable: dict[str, Any], series: list[dict[str, str]]) -> list[str]:
    """What Grafana lists for a query_result() variable: its regex applied to the text of each
    series, `name{label="value", ...}` (the value and timestamp after it are left out here)."""
    pattern = re.fullmatch(r"/(.*)/", variable.get("regex") or "")
    assert pattern, f"${variable['name']}: query_result() needs a /regex/ to pick the value"
    choices = set()
    for labels in series:
        name = labels.get("__name__", "")
        text = (
            name
            + "{"
            + ", ".join(
                f'{key}="{value}"' for key, value in sorted(labels.items()) if key != "__name__"
            )
            + "}"
        )
        found = re.search(pattern.group(1), text)
        if found:
            choices.add(found.group(1) if found.groups() else found.group(0))
    return sorted(choices)


def dashboard_expressions(board: dict[str, Any], values: dict[str, str]) -> list[Expression]:
    return [
        Expression(f"{board['title']} / {item['title']}", substitute(target["expr"], values))
        for item in panels(board)
        for target in item.get("targets", [])
    ]


def rules(rule_files: list[Path]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path in rule_files:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                yield f"{path.name} / {rule.get('alert') or rule.get('record')}", rule


def fast_rule_files(rule_files: list[Path], directory: Path) -> list[Path]:
    """Copies of the rule files whose groups follow the global evaluation interval (seconds
    in the test) instead of their own (30 s, 1 m), so a minute of data exercises them."""
    directory.mkdir(parents=True, exist_ok=True)
    copies = []
    for path in rule_files:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in document["groups"]:
            group.pop("interval", None)
        copy = directory / path.name
        copy.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
        copies.append(copy)
    return copies


_PROTECTED = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`|\{[^{}]*\}')
_OFFSET = re.compile(r"\s+offset\s+-?(?:\d+(?:ms|[smhdwy]))+")
_COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)(?!\s*bool\b)")
_MATCHING = re.compile(r"^\s*(?:on|ignoring)\s*\([^)]*\)")


def judged_forms(expr: str) -> list[str]:
    """Queries that return data whenever the alert `expr` can be judged, firing or not.

    An alert expression returns nothing while all is well, so running it as it is proves only
    that it parses. Here each comparison gets `bool` (every series judged comes back, 1 or 0,
    instead of only the failing ones), `offset`s go (a one-minute-old Prometheus has no day
    of history), and the top-level `A unless B` and `A or B` are split into A and B (B's
    series, present, would hide A's; with `or`, B alone would make the rule look alive), also
    inside parentheses around the whole: each query must return data, so every metric and
    recorded series the rule reads exists with the labels its joins need.
    """
    saved: list[str] = []

    def protect(match: re.Match[str]) -> str:
        saved.append(match.group(0))
        return f"\x00{len(saved) - 1}\x00"

    code = _PROTECTED.sub(protect, expr)
    code = _OFFSET.sub("", code)
    code = _COMPARISON.sub(r"\1 bool", code)
    return [
        re.sub(r"\x00(\d+)\x00", lambda m: saved[int(m.group(1))], form) for form in _sides(code)
    ]


def _sides(code: str) -> list[str]:
    sides = []
    for part in _top_level_split(code, r"\b(?:unless|or)\b"):
        part = _MATCHING.sub("", part).strip()
        inner = _unwrapped(part)
        sides.extend([part] if inner is None else _sides(inner))
    return sides


def _unwrapped(code: str) -> str | None:
    """What is inside parentheses that enclose all of `code`; None when they do not."""
    if not code.startswith("("):
        return None
    depth = 0
    for index, char in enumerate(code):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return code[1:-1] if index == len(code) - 1 else None
    return None


def _top_level_split(code: str, keywords: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for match in re.finditer(rf"[()]|{keywords}", code):
        found = match.group(0)
        if found == "(":
            depth += 1
        elif found == ")":
            depth -= 1
        elif depth == 0:
            parts.append(code[start : match.start()])
            start = match.end()
    parts.append(code[start:])
    return parts


def run(prometheus: Prometheus, expression: Expression) -> str | None:
    """None when the query returns data; else what is wrong with it."""
    answer = prometheus.api("/api/v1/query", {"query": expression.expr})
    if answer.get("status") != "success":
        return f"error: {answer.get('error')}"
    data = answer["data"]
    if data["resultType"] in ("scalar", "string"):
        return None
    values = [float(series["value"][1]) for series in data["result"]]
    if not values:
        return "empty"
    if all(math.isnan(value) for value in values):
        return "only NaN"
    return None
