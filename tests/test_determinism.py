"""Workflow code stays deterministic: the worker passes our modules through the sandbox (incidentctl/workers.py),
so this check, and replaying recorded histories (tests/test_replay.py), stand where the sandbox's runtime
checks would: no clock, randomness, environment, threads or I/O in the engine or the language it evaluates."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What runs inside a workflow: the engine, and the parts of the language it evaluates or parses.
WORKFLOW_CODE = [*sorted((ROOT / "workflows").glob("*.py")),
                 *(ROOT / "incidentctl" / "dsl" / name for name in ("expressions.py", "durations.py", "plan.py"))]
FORBIDDEN_MODULES = {"time", "random", "uuid", "os", "socket", "subprocess", "threading", "secrets", "aiohttp",
                     "requests", "urllib", "http", "pathlib", "shutil", "tempfile", "kubernetes", "boto3"}
# Builtins that read or write the outside world, and the clock/sleep of the standard library (time comes from
# workflow.now(), waiting from workflow.sleep()/wait_condition).
FORBIDDEN_BUILTINS = {"open", "input", "print"}
FORBIDDEN_METHODS = {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"),
                     ("asyncio", "sleep"), ("os", "getenv")}


def problems_in(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        found += [f"{path.name}:{node.lineno} imports {n}" for n in names if n.split(".")[0] in FORBIDDEN_MODULES]
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_BUILTINS:
                found.append(f"{path.name}:{node.lineno} calls {func.id}()")
            elif (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                  and (func.value.id, func.attr) in FORBIDDEN_METHODS):
                found.append(f"{path.name}:{node.lineno} calls {func.value.id}.{func.attr}()")
    return found


def test_workflow_code_has_no_clock_randomness_or_io() -> None:
    assert [p for path in WORKFLOW_CODE for p in problems_in(path)] == []


def test_the_check_catches_what_it_looks_for(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nfrom datetime import datetime\n\ndef f():\n    return datetime.now(), open('x')\n")
    assert problems_in(bad) == ["bad.py:1 imports time", "bad.py:5 calls datetime.now()", "bad.py:5 calls open()"]
