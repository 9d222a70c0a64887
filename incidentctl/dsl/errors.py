"""Runbook errors that point at the YAML: file:line:column, JSON path and a plain sentence."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class RunbookError:
    file: str
    line: int | None
    column: int | None
    json_path: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        return f"{where}: {self.json_path}: {self.message}"


class RunbookErrors(Exception):
    def __init__(self, errors: list[RunbookError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


def json_path(path: Iterable[str | int], root: str = "$") -> str:
    """`("steps", 2, "retry")` -> `$.steps[2].retry`; `root="params"` -> `params.steps[2].retry`."""
    out = root
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out
