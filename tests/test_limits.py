"""Inputs that used to wedge or exhaust: catastrophic regexes, YAML alias bombs and loops, whole numbers past
64 bits. Unit checks of each guard, and one incident on the real dev server and worker whose alert carries
the bad inputs: its steps fail or answer at once with a reason, and the incident goes on."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from incidentctl import client as incidents
from incidentctl.dsl import expressions
from incidentctl.dsl.errors import RunbookErrors
from incidentctl.dsl.matchers import parse_matcher
from incidentctl.dsl.source import MAX_YAML_NODES
from incidentctl.library import compile_directory, compile_text
from tests.conftest import TEST_TASK_QUEUE

LAUGHS = "name: laughs\nversion: 1\n" + "".join(
    f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}" if i else '"lol"'] * 9) + "]\n" for i in range(9)) + "steps: []\n"
LOOP = "name: loop\nversion: 1\nsteps: &s\n  - id: x\n    action: util.echo\n    params: {message: *s}\n"


def test_a_catastrophic_regex_answers_at_once() -> None:
    began = time.perf_counter()
    assert expressions.evaluate("matches(s, '(a+)+$')", {"s": "a" * 30_000 + "b"}) is False
    assert time.perf_counter() - began < 1.0  # Python's own engine takes longer than the universe has
    assert parse_matcher('pod=~"(a+)+$"').matches({"pod": "a" * 30_000 + "b"}) is False


def test_patterns_re2_cannot_run_are_refused_with_the_reason() -> None:
    with pytest.raises(expressions.ExpressionError, match="no backreferences or lookaround"):
        expressions.evaluate(r"matches(s, '(a)\\1')", {"s": "aa"})
    with pytest.raises(ValueError, match="bad regular expression"):
        parse_matcher('pod=~"(?=x)"')


@pytest.mark.parametrize(("expression", "context"), [
    ("int(x)", {"x": "9" * 5000}), ("int(x)", {"x": "9" * 19}), ("x * x", {"x": 10**18}),
    ("1" + "0" * 30, {}),
])
def test_whole_numbers_stay_within_64_bits(expression: str, context: dict) -> None:
    with pytest.raises(expressions.ExpressionError, match="beyond 64 bits"):
        expressions.evaluate(expression, context)
    assert expressions.evaluate("int(x)", {"x": str(2**63 - 1)}) == 2**63 - 1


def test_yaml_alias_bombs_and_loops_are_refused_with_their_place(tmp_path: Path) -> None:
    with pytest.raises(RunbookErrors, match=f"expands to more than {MAX_YAML_NODES} YAML nodes"):
        compile_text(LAUGHS, "laughs.yaml")
    with pytest.raises(RunbookErrors, match=r"loop.yaml:3:8: \$\.steps\[0\]\.params\.message: an alias refers "
                                            "to a node that contains it"):
        compile_text(LOOP, "loop.yaml")
    # One bad file never stops the others.
    (tmp_path / "laughs.yaml").write_text(LAUGHS)
    (tmp_path / "loop.yaml").write_text(LOOP)
    (tmp_path / "good.yaml").write_text("name: good\nversion: 1\nsteps:\n  - {id: x, action: util.echo}\n")
    plans, errors = compile_directory([tmp_path])
    assert [p.runbook.name for p in plans] == ["good"] and len(errors) == 2


BAD_INPUTS = """
name: lim-bad-inputs
version: 1
parameters:
  big: {type: string, default: "${{ alert.labels.big }}"}
steps:
  - id: pattern
    action: util.echo
    params: {message: "${{ matches(alert.labels.text, '(a+)+$') }}"}
  - id: number
    action: util.echo
    params: {message: "${{ int(params.big) }}"}
    on_failure: continue
  - id: after
    action: util.echo
    params: {message: still here}
"""


async def test_an_alert_carrying_bad_inputs_fails_one_step_and_the_incident_goes_on(
        client: Client, worker: Worker, unique: str) -> None:
    alert = {"labels": {"alertname": "Bad", "text": "a" * 30_000 + "b", "big": "9" * 5000}, "status": "firing"}
    started = await incidents.start_incident(client, compile_text(BAD_INPUTS, "bad.yaml"), alert=alert, key=unique,
                                             task_queue=TEST_TASK_QUEUE)
    summary = await incidents.wait_for_runbook(client, started.incident_id, timeout=60)
    steps = summary["steps"]
    assert steps["pattern"]["output"]["message"] is False  # a whole template keeps its type
    assert steps["number"]["status"] == "failed" and "beyond 64 bits" in steps["number"]["error"]["message"]
    assert steps["after"]["status"] == "succeeded" and summary["outcome"] == "succeeded"
    await incidents.cancel_incident(client, started.incident_id)


def test_a_plan_too_large_to_start_is_refused_at_compile_time() -> None:
    from incidentctl.dsl.compiler import MAX_PLAN_BYTES

    huge = "x" * 2000
    steps = "".join(f"  - {{id: s{i}, action: util.echo, params: {{message: '{huge}'}}}}\n"
                    for i in range(MAX_PLAN_BYTES // 2000 + 10))
    with pytest.raises(RunbookErrors, match=r"the compiled plan is \d+ KiB, over the 512 KiB limit"):
        compile_text(f"name: huge\nversion: 1\nsteps:\n{steps}", "huge.yaml")
