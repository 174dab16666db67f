"""Config problems as people read them: `path.to.field: what is wrong`, all of them at once.

Turns pydantic's errors into `ConfigProblem`s with our wording (`required`, `unknown key`) and
paths written as in the file (`targets[3].probes.snmp.port`). It must not validate anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(Exception):
    """A config that cannot be used; `problems` lists every reason."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


def format_location(location: Sequence[int | str]) -> str:
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part == "[key]":
            continue
        else:
            text += f".{part}" if text else str(part)
    return text


_MESSAGES = {
    "missing": "required",
    "extra_forbidden": "unknown key (check the spelling)",
}


# A named credential is SNMP or API by its keys (`netmon.credentials.Credential`); pydantic
# names the kind it tried in the path (`credentials.x.snmp.community`), which the file lacks.
_CREDENTIAL_KINDS = frozenset({"snmp", "api"})


def _untagged(location: list[int | str]) -> list[int | str]:
    for index, part in enumerate(location[:-2]):
        if part == "credentials" and location[index + 2] in _CREDENTIAL_KINDS:
            return [*location[: index + 2], *location[index + 3 :]]
    return location


def validation_problems(
    exc: ValidationError, prefix: Sequence[int | str] = ()
) -> list[ConfigProblem]:
    problems = []
    for error in exc.errors():
        message = _MESSAGES.get(error["type"], error["msg"]).removeprefix("Value error, ")
        location = _untagged([*prefix, *error["loc"]])
        if error["type"] == "literal_error" and "expected" in error.get("ctx", {}):
            message = f"must be one of {error['ctx']['expected']}"
        problems.append(ConfigProblem(format_location(location), message))
    return problems
