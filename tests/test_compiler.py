"""Runbook schema and compiler: valid runbooks compile to the documented plan; each mistake is named at its line."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from incidentctl.dsl.actions import ActionInfo
from incidentctl.dsl.compiler import compile_directory, compile_file, compile_source
from incidentctl.dsl.durations import parse_duration
from incidentctl.dsl.errors import RunbookErrors
from incidentctl.dsl.plan import (
    DEFAULT_HEARTBEAT_S,
    MUTATING_MAX_ATTEMPTS,
    NON_IDEMPOTENT_MAX_ATTEMPTS,
    Plan,
    Retry,
)
from incidentctl.dsl.resources import schemas_dir
from incidentctl.dsl.source import load_yaml
from incidentctl.dsl.summary import summarize_plan
from incidentctl.library import find_runbook, installed_actions, load_plan, runbook_dirs

ROOT = Path(__file__).resolve().parents[1]

VALID = """\
name: every-kind
version: 2
description: uses every step kind
owner: alice
team: sre
severity: SEV2
service: "${{ params.service }}"
trigger: {alertname: KubePodCrashLooping, matchers: ['namespace="prod"'], priority: 5}
parameters:
  service: {type: string, default: "${{ alert.labels.service }}"}
  hosts: {type: array, default: [a, b]}
  limit: {type: integer, default: 3}
steps:
  - id: probe
    action: util.echo
    params: {message: "${{ params.service }}"}
    outputs: {count: "${{ len(params.hosts) }}"}
    timeout: 30s
    retry: {max_attempts: 5, initial_interval: 500ms, backoff: 1.5, max_interval: 1m, non_retryable_errors: [Nope]}
  - id: verify
    check: util.echo
    params: {message: ok}
    assert: "${{ result.message == 'ok' }}"
    message: "got ${{ result.message }}"
    on_failure: {goto: gate}
  - id: poll
    wait_until: http.check
    params: {url: "http://127.0.0.1:1/health"}
    until: result.ok
    interval: 2s
    timeout: 1h
    on_failure: continue
  - id: gate
    approval: {message: "go?", approvers: [alice, bob], required: 2, timeout: 30m, on_timeout: approve}
  - id: pause
    sleep: 1m30s
  - id: tell
    notify: {message: "count is ${{ steps.probe.output.count }}", level: warning}
  - id: route
    branch:
      - when: steps.probe.output.count > params.limit
        steps:
          - id: big
            action: util.echo
            params: {message: big}
      - default:
          - id: small
            action: util.echo
            params: {message: small}
  - id: fan
    parallel:
      - name: one
        steps: [{id: p1, action: util.echo, params: {message: 1}}]
      - steps: [{id: p2, action: util.echo, params: {message: 2}}]
    fail_fast: true
  - id: each
    foreach: params.hosts
    as: host
    concurrency: 2
    steps:
      - id: per_host
        action: http.request
        params: {url: "http://${{ host }}/restart"}
        when: loop.index < 5
    on_failure: rollback
rollback:
  - id: undo
    notify: {message: "undo after ${{ steps.each.error.message }}"}
# The gate approves itself on timeout before per_host's request: allowed only because the runbook says so.
auto_approve_mutations: true
"""


CATALOG = installed_actions()


def compile_plan(text: str) -> Plan:
    return compile_source(textwrap.dedent(text), "rb.yaml", CATALOG)


def compile_text(text: str) -> dict:
    """The plan as the workflow receives it (the documented JSON shape)."""
    return compile_plan(text).to_json()


def errors_of(text: str) -> list[str]:
    with pytest.raises(RunbookErrors) as caught:
        compile_text(text)
    return [str(e) for e in caught.value.errors]


def test_valid_runbook_compiles_to_documented_plan() -> None:
    plan = compile_text(VALID)
    assert plan["format"] == 1 and len(plan["hash"]) == 64
    assert plan["runbook"] == {"name": "every-kind", "version": "2", "description": "uses every step kind",
                               "owner": "alice", "team": "sre", "severity": "SEV2",
                               "service": "${{ params.service }}"}
    assert plan["parameters"]["limit"] == {"type": "integer", "required": False, "default": 3,
                                           "description": None, "enum": None}
    steps = {s["id"]: s for s in plan["steps"]}
    keys = set(steps["probe"])
    assert all(set(s) == keys for s in plan["steps"]), "every step has every key"
    probe = steps["probe"]
    assert (probe["kind"], probe["action"], probe["timeout_s"], probe["line"]) == ("action", "util.echo", 30.0, 14)
    assert probe["retry"] == {"max_attempts": 5, "initial_interval_s": 0.5, "backoff": 1.5, "max_interval_s": 60.0,
                              "non_retryable_errors": ["Nope"]}
    assert steps["verify"]["assert"] == "result.message == 'ok'"
    assert steps["verify"]["on_failure"] == {"mode": "goto", "target": "gate"}
    poll = steps["poll"]
    assert (poll["interval_s"], poll["deadline_s"], poll["timeout_s"]) == (2.0, 3600.0, 300.0)
    assert steps["gate"]["approval"] == {"message": "go?", "approvers": ["alice", "bob"], "groups": [], "required": 2,
                                         "timeout_s": 1800.0, "on_timeout": "approve",
                                         "allow_self_approval": False, "escalation": []}
    assert steps["pause"]["duration_s"] == 90.0
    assert steps["tell"]["action"] == "notify.log"
    assert steps["tell"]["params"] == {"message": "count is ${{ steps.probe.output.count }}", "level": "warning"}
    assert steps["route"]["cases"][0]["when"] == "steps.probe.output.count > params.limit"
    assert [s["id"] for s in steps["route"]["default"]] == ["small"]
    assert [b["name"] for b in steps["fan"]["branches"]] == ["one", "branch2"] and steps["fan"]["fail_fast"]
    each = steps["each"]
    assert (each["items"], each["as"], each["concurrency"]) == ("params.hosts", "host", 2)
    per_host = each["steps"][0]
    assert per_host["mutates"] is True
    assert per_host["retry"]["max_attempts"] == 1, "mutating actions are not retried unless the runbook says so"
    assert probe["mutates"] is False and steps["verify"]["retry"]["max_attempts"] == 3
    assert [s["id"] for s in plan["rollback"]] == ["undo"]
    assert plan["auto_approve_mutations"] is True
    assert plan["changes"] is None, "it changes no Kubernetes object"


def test_hash_is_stable_and_changes_with_content() -> None:
    first, second = compile_text(VALID), compile_text(VALID)
    assert first["hash"] == second["hash"]
    changed = compile_text(VALID.replace("params: {message: big}", "params: {message: huge}"))
    assert changed["hash"] != first["hash"]


def test_summary_names_steps_approvals_and_rollback() -> None:
    text = summarize_plan(compile_plan(VALID))
    assert "runbook every-kind v2" in text
    assert "needs 2 approval(s) from alice, bob; timeout 30m then approve" in text
    assert "action: http.request  (MUTATES)" in text
    assert "for each host in params.hosts (2 at a time):" in text
    assert "on failure: goto gate" in text
    assert "rollback:" in text and "undo [notify]" in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\nversion: 1\nsteps:\n  - id: a\n    action: util.echo\n    colour: red\n",
         "rb.yaml:6:5: $.steps[0].colour: unknown key 'colour' (allowed: action, approval, as, assert, "),
        ("name: x\nversion: 1\nsteps:\n  - id: a\n    action: util.echo\n    timout: 5s\n",
         "rb.yaml:6:5: $.steps[0].timout: unknown key 'timout' (did you mean 'timeout'?)"),
        ("name: x\nversion: 1\nsteps:\n  - id: a\n    check: util.echo\n",
         "rb.yaml:4:5: $.steps[0]: missing required key 'assert'"),
        ("name: x\nversion: 1\nsteps:\n  - id: a\n    action: util.echo\n    sleep: 5s\n",
         "rb.yaml:4:5: $.steps[0]: a step has exactly one kind, found action and sleep: split it into separate steps"),
        ("name: x\nversion: 1\nsteps:\n  - id: a\n    action: util.echo\n    retry: {max_attempts: many}\n",
         "rb.yaml:6:27: $.steps[0].retry.max_attempts: must be an integer, not a string"),
        ("name: x\nversion: 1\nsteps:\n  - id: a\n    action: util.echo\n    timeout: 5 minutes\n",
         "rb.yaml:6:14: $.steps[0].timeout: '5 minutes' is not a duration like '90s', '5m', '1h30m', '2d' or a "
         "number of seconds"),
        ("name: x\nversion: 1\nsteps:\n  - id: Bad\n    sleep: 1s\n",
         "rb.yaml:4:9: $.steps[0].id: 'Bad' is not a valid id: use lowercase letters, digits and _, starting with "
         "a letter"),
        ("name: Pod_Crash\nversion: 1\nsteps: [{id: a, sleep: 1s}]\n",
         "rb.yaml:1:7: $.name: 'Pod_Crash' is not a valid name: use lowercase letters, digits and -"),
        ("name: x\nversion: 1\nsteps:\n  - id: a\n    sleep: 1s\n    on_failure: explode\n",
         "rb.yaml:6:17: $.steps[0].on_failure: must be one of abort, continue, rollback, not 'explode'"),
        ("name: x\nversion: 1\nsteps:\n  - id: a\n    action: util.echo\n    until: x\n",
         "rb.yaml:6:5: $.steps[0].until: 'until' does not belong in an action step"),
        ("name: x\nversion: 1\nsteps:\n  - id: a\n", "rb.yaml:4:5: $.steps[0]: a step needs one kind key: action, "
         "check, wait_until, approval, sleep, notify, branch, parallel, foreach"),
        ("version: 1\nsteps: []\n", "rb.yaml:1:1: $: missing required key 'name'"),
    ],
)
def test_schema_errors_are_sentences_at_yaml_positions(text: str, expected: str) -> None:
    found = errors_of(text)
    assert any(e.startswith(expected) for e in found), found


def test_yaml_syntax_error_and_duplicate_key_have_positions() -> None:
    assert errors_of("name: x\nsteps: [\n  - id: a\n") == [
        "rb.yaml:3:3: $: YAML syntax error: while parsing a flow node: expected the node content, but found '-'"
    ]
    assert errors_of("name: x\nversion: 1\nname: y\nsteps: []\n") == [
        "rb.yaml:3:1: $.name: key 'name' appears twice (first on line 1)"
    ]
    assert errors_of("name: x\n---\nname: y\n")[0].startswith("rb.yaml:2:1: $: YAML syntax error: a runbook file "
                                                               "holds one YAML document")


SEMANTIC_CASES = [
    ("""\
     name: x
     version: 1
     steps:
       - id: a
         action: util.ecko
     """, "rb.yaml:5:13: $.steps[0].action: unknown action 'util.ecko' (did you mean 'util.echo'?)"),
    ("""\
     name: x
     version: 1
     steps:
       - id: a
         action: http.check
         params: {method: GET}
     """, "rb.yaml:6:13: $.steps[0].params: http.check: missing parameter 'url'"),
    ("""\
     name: x
     version: 1
     steps:
       - id: a
         action: http.check
         params: {url: "${{ params.url }}", timeout: fast}
     """, "rb.yaml:6:49: $.steps[0].params.timeout: http.check: must be a number, not a string"),
    ("""\
     name: x
     version: 1
     steps:
       - id: a
         action: http.check
         params:
           url: http://x/
           methd: GET
     """, "rb.yaml:8:7: $.steps[0].params.methd: http.check: unknown parameter 'methd' (did you mean 'method'?)"),
    ("""\
     name: x
     version: 1
     steps:
       - id: a
         sleep: 1s
       - id: a
         sleep: 2s
     """, "rb.yaml:6:9: $.steps[1].id: duplicate step id 'a' (first used on line 4)"),
    ("""\
     name: x
     version: 1
     steps:
       - id: a
         action: util.echo
         params: {message: "${{ steps.nope.output }}"}
     """, "rb.yaml:6:13: $.steps[0].params: no step 'nope' in 'steps.nope.output'"),
    ("""\
     name: x
     version: 1
     steps:
       - id: first
         action: util.echo
         outputs: {count: "${{ result.message }}"}
       - id: second
         when: steps.first.output.cuont > 1
         sleep: 1s
     """, "rb.yaml:8:11: $.steps[1].when: step 'first' has no output 'cuont' (its outputs: count)"),
    ("""\
     name: x
     version: 1
     steps:
       - id: a
         action: util.echo
         params: {message: "${{ params.missing }}"}
     """, "rb.yaml:6:13: $.steps[0].params: unknown parameter 'missing' in 'params.missing' (declared: none)"),
    ("""\
     name: x
     version: 1
     steps:
       - id: a
         action: util.echo
         params: {message: "${{ result.message }}"}
     """, "rb.yaml:6:13: $.steps[0].params: 'result' is only known in a step's outputs, assert, until and message "
          "(in 'result.message')"),
    ("""\
     name: x
     version: 1
     steps:
       - id: a
         action: util.echo
         params: {message: "${{ secrets.token }}"}
     """, "rb.yaml:6:13: $.steps[0].params: unknown name 'secrets' in 'secrets.token' (known here: alert, incident, "
          "params, steps)"),
    ("""\
     name: x
     version: 1
     steps:
       - id: a
         when: "steps.a.status == 'x' and"
         sleep: 1s
     """, "rb.yaml:5:11: $.steps[0].when: expression error: unexpected token end of expression at column 26 in "
          "\"steps.a.status == 'x' and\""),
    ("""\
     name: x
     version: 1
     steps:
       - id: a
         sleep: 1s
       - id: b
         sleep: 1s
         on_failure: {goto: a}
     """, "rb.yaml:8:17: $.steps[1].on_failure: goto target 'a' is not a later step in the same list: jumps may only "
          "go forward, so runbooks cannot loop"),
    ("""\
     name: x
     version: 1
     steps:
       - id: outer
         foreach: "[1]"
         steps:
           - id: inner
             sleep: 1s
       - id: b
         sleep: 1s
         next: inner
     """, "rb.yaml:11:11: $.steps[1].next: next target 'inner' is not a later step in the same list: jumps may only "
          "go forward, so runbooks cannot loop"),
    ("""\
     name: x
     version: 1
     steps:
       - id: outer
         when: steps.inner.status == 'succeeded'
         parallel:
           - steps: [{id: inner, sleep: 1s}]
     """, "rb.yaml:5:11: $.steps[0].when: step 'inner' runs inside step 'outer', so it has no result yet when 'outer' "
          "starts"),
    ("""\
     name: x
     version: 1
     steps:
       - id: a
         sleep: 1s
         next: ghost
     """, "rb.yaml:6:11: $.steps[0].next: no step 'ghost'"),
    ("""\
     name: x
     version: 1
     steps:
       - id: a
         sleep: 1s
         next: c
       - id: b
         sleep: 1s
       - id: c
         sleep: 1s
     """, "rb.yaml:7:9: $.steps[1].id: step 'b' can never run: every path jumps over it"),
    ("""\
     name: x
     version: 1
     steps:
       - id: a
         sleep: 1s
         end: true
       - id: b
         sleep: 1s
     """, "rb.yaml:7:9: $.steps[1].id: step 'b' can never run: every path jumps over it"),
    ("""\
     name: x
     version: 1
     steps:
       - id: a
         action: util.echo
         on_failure: rollback
     """, "rb.yaml:6:17: $.steps[0].on_failure: on_failure is rollback but the runbook has no rollback section"),
    ("""\
     name: x
     version: 1
     steps:
       - id: a
         approval: {approvers: [alice], required: 2}
     """, "rb.yaml:5:46: $.steps[0].approval.required: needs 2 approvals but only 1 approver(s) are listed"),
    ("""\
     name: x
     version: 1
     steps:
       - id: a
         approval: {message: "anyone?"}
     """, "rb.yaml:5:15: $.steps[0].approval: an approval names who decides (approvers, groups or both): one "
          "anybody could give would approve nothing"),
    ("""\
     name: x
     version: 1
     parameters:
       limit: {type: integer, default: lots}
     steps:
       - id: a
         sleep: 1s
     """, "rb.yaml:4:35: $.parameters.limit.default: default 'lots' is not of the declared type integer"),
    ("""\
     name: x
     version: 1
     steps:
       - id: a
         action: util.echo
         params: {message: "${{ unknownfn(1) }}"}
     """, "rb.yaml:6:13: $.steps[0].params: expression error: unknown function 'unknownfn'"),
]


@pytest.mark.parametrize(("text", "expected"), SEMANTIC_CASES)
def test_semantic_errors_point_at_the_yaml_line(text: str, expected: str) -> None:
    found = errors_of(text)
    assert any(e.startswith(expected) for e in found), found


def test_all_errors_are_reported_at_once() -> None:
    found = errors_of("""\
    name: x
    version: 1
    steps:
      - id: a
        action: util.ecko
      - id: b
        action: util.echo
        params: {message: "${{ steps.zzz.output }}"}
    """)
    assert len(found) == 2


def test_foreach_variable_is_known_only_inside_the_loop() -> None:
    compile_text("""\
    name: x
    version: 1
    steps:
      - id: each
        foreach: "[1, 2]"
        as: n
        steps:
          - {id: inner, action: util.echo, params: {message: "${{ n }} ${{ loop.index }}"}}
    """)
    found = errors_of("""\
    name: x
    version: 1
    steps:
      - id: each
        foreach: "[1, 2]"
        as: n
        steps:
          - {id: inner, action: util.echo, params: {message: "${{ n }}"}}
      - {id: after, action: util.echo, params: {message: "${{ n }}"}}
    """)
    assert any("unknown name 'n'" in e and "$.steps[1].params" in e for e in found), found


def test_shipped_runbooks_validate_and_duplicates_are_refused(tmp_path: Path) -> None:
    plans, errors = compile_directory([ROOT / "runbooks"], CATALOG)
    assert plans and not errors
    (tmp_path / "a.yaml").write_text("name: same\nversion: 1\nsteps: [{id: a, sleep: 1s}]\n")
    (tmp_path / "b.yml").write_text("name: same\nversion: 1\nsteps: [{id: a, sleep: 1s}]\n")
    (tmp_path / "broken.yaml").write_text("name: broken\nversion: 1\nsteps: [{id: a, action: nope.nope}]\n")
    plans, errors = compile_directory([tmp_path], CATALOG)
    assert [p.runbook.name for p in plans] == ["same"]
    messages = sorted(str(e) for e in errors)
    assert any("runbook name 'same' is already used by" in m for m in messages)
    assert any(m.startswith(f"{tmp_path / 'broken.yaml'}:3:") and "unknown action 'nope.nope'" in m for m in messages)


def test_catalog_finds_by_name_or_path_and_lists_names_when_missing(tmp_path: Path) -> None:
    path = find_runbook("demo-http-service")
    assert path.name == "demo-http-service.yaml"
    assert compile_file(path, CATALOG).runbook.name == "demo-http-service"
    with pytest.raises(LookupError, match="no runbook named 'nope' \\(available: .*demo-http-service"):
        find_runbook("nope")


def test_defaults_fill_every_key_of_nested_steps() -> None:
    plan = compile_text("""\
    name: x
    version: 1
    steps:
      - id: poll
        wait_until: util.echo
        params: {message: hi}
        until: "${{ result.message == 'hi' }}"
      - id: fix
        action: http.request
        params: {url: "http://127.0.0.1:1/"}
      - id: fan
        parallel:
          - steps: [{id: tell, notify: {message: done}}]
    """)
    poll, fix, fan = plan["steps"]
    assert (poll["until"], poll["interval_s"], poll["deadline_s"], poll["timeout_s"]) == (
        "result.message == 'hi'", 10.0, 600.0, 300.0)
    assert poll["retry"] == {"max_attempts": 3, "initial_interval_s": 1.0, "backoff": 2.0, "max_interval_s": 30.0,
                             "non_retryable_errors": []}
    assert (fix["mutates"], fix["retry"]["max_attempts"], fix["timeout_s"]) == (True, 1, 300.0)
    assert (fan["retry"], fan["timeout_s"], fan["action"], fan["on_failure"]) == (
        None, None, None, {"mode": "abort", "target": None})
    tell = fan["branches"][0]["steps"][0]
    assert set(tell) == set(poll), "nested steps carry every key too"
    assert (tell["kind"], tell["action"], tell["params"]) == ("notify", "notify.log", {"message": "done"})
    assert plan["rollback"] == [] and plan["trigger"] is None and plan["parameters"] == {}


def test_mutating_action_keeps_the_retry_its_author_asked_for() -> None:
    plan = compile_text("""\
    name: x
    version: 1
    steps:
      - id: fix
        action: http.request
        params: {url: "http://127.0.0.1:1/"}
        retry: {max_attempts: 4}
    """)
    assert plan["steps"][0]["retry"]["max_attempts"] == 4


def test_a_broken_next_is_reported_once_without_a_cascade() -> None:
    found = errors_of("""\
    name: x
    version: 1
    steps:
      - {id: a, sleep: 1s, next: ghots}
      - {id: ghost, sleep: 1s}
    """)
    assert found == ["rb.yaml:4:30: $.steps[0].next: no step 'ghots' (did you mean 'ghost'?)"]


def test_container_outputs_may_use_their_body() -> None:
    plan = compile_text("""\
    name: x
    version: 1
    steps:
      - id: fan
        parallel:
          - steps: [{id: inner, action: util.echo, params: {message: hi}}]
        outputs: {said: "${{ steps.inner.output.message }}"}
      - id: after
        action: util.echo
        params: {message: "${{ steps.fan.output.said }} (${{ steps.inner.status }})"}
    """)
    assert plan["steps"][0]["outputs"] == {"said": "${{ steps.inner.output.message }}"}


def test_every_unknown_and_missing_key_is_reported() -> None:
    found = errors_of("name: x\nversion: 1\nsteps:\n  - id: a\n    approval: {colour: red, size: 2}\n")
    allowed = ("(allowed: allow_self_approval, approvers, escalation, groups, message, on_timeout, required, "
               "timeout)")
    assert found == [f"rb.yaml:5:16: $.steps[0].approval.colour: unknown key 'colour' {allowed}",
                     f"rb.yaml:5:29: $.steps[0].approval.size: unknown key 'size' {allowed}"]
    found = errors_of("description: nothing\n")
    assert found == ["rb.yaml:1:1: $: missing required key 'name'", "rb.yaml:1:1: $: missing required key 'version'",
                     "rb.yaml:1:1: $: missing required key 'steps'"]


def test_service_and_loop_variable_are_checked() -> None:
    found = errors_of("""\
    name: x
    version: 1
    service: "${{ steps.a.output }}"
    steps:
      - id: a
        foreach: "[1]"
        as: params
        steps: [{id: b, sleep: 1s}]
    """)
    assert found == [
        "rb.yaml:3:10: $.service: the service is known before any step runs, so it may use params, alert and "
        "incident, not 'steps' (in 'steps.a.output')",
        "rb.yaml:7:9: $.steps[0].as: the loop variable cannot be called 'params': that name is taken (params, alert, "
        "steps, incident, result, loop)",
    ]


def test_duplicate_ids_in_rollback_and_nested_lists_point_at_the_second() -> None:
    found = errors_of("""\
    name: x
    version: 1
    steps:
      - id: a
        foreach: "[1]"
        steps: [{id: b, sleep: 1s}]
    rollback:
      - {id: b, sleep: 1s}
    """)
    assert found == ["rb.yaml:8:10: $.rollback[0].id: duplicate step id 'b' (first used on line 6)"]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(30, 30.0), (2.5, 2.5), ("500ms", 0.5), ("90s", 90.0), ("5m", 300.0), ("1h30m", 5400.0), ("2d", 172800.0),
     ("1w", 604800.0), (" 1m 30s ", 90.0)],
)
def test_parse_duration_accepts_numbers_and_units(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(("value", "words"), [("5 minutes", "not a duration"), ("", "not a duration"),
                                               (-1, "cannot be negative"), (True, "not a duration"),
                                               ([1], "must be text")])
def test_parse_duration_rejects_with_a_sentence(value: object, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_duration(value)


def test_source_positions_fall_back_to_the_nearest_ancestor() -> None:
    source = load_yaml("name: x\nsteps:\n  - id: a\n    params: {k: v}\n", "f.yaml")
    assert source.data == {"name": "x", "steps": [{"id": "a", "params": {"k": "v"}}]}
    assert source.position(("steps", 0, "params", "k")) == (4, 17)
    assert source.position(("steps", 0, "params", "missing", 3)) == (4, 13)
    assert source.position(("steps", 0)) == (3, 5)
    assert str(source.error(("steps", 0, "id"), "bad")) == "f.yaml:3:9: $.steps[0].id: bad"


def test_schemas_dir_can_be_overridden(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert (schemas_dir() / "runbook.schema.json").is_file()
    monkeypatch.setenv("INCIDENTCTL_SCHEMAS_DIR", str(tmp_path))
    assert schemas_dir() == tmp_path


def test_catalog_reads_runbook_dirs_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "mine.yaml").write_text("name: mine\nversion: 7\nsteps: [{id: a, sleep: 1s}]\n")
    monkeypatch.setenv("INCIDENTCTL_RUNBOOKS", os.pathsep.join([str(tmp_path / "one"), str(tmp_path / "two")]))
    assert runbook_dirs() == [tmp_path / "one", tmp_path / "two"]
    assert load_plan("mine").runbook.version == "7"
    assert find_runbook(str(tmp_path / "one" / "mine.yaml")) == tmp_path / "one" / "mine.yaml"
    with pytest.raises(LookupError, match=r"available: mine\)"):
        find_runbook("theirs")


def test_escalation_stages_compile_and_need_timeouts() -> None:
    plan = compile_text("""\
    name: x
    version: 1
    steps:
      - id: gate
        approval:
          approvers: [alice]
          timeout: 10m
          allow_self_approval: true
          escalation:
            - {groups: [sre-leads], timeout: 20m}
            - {approvers: [cto]}
    """)
    approval = plan["steps"][0]["approval"]
    assert approval["allow_self_approval"] is True
    assert approval["escalation"] == [{"approvers": [], "groups": ["sre-leads"], "timeout_s": 1200.0},
                                      {"approvers": ["cto"], "groups": [], "timeout_s": None}]
    found = errors_of("""\
    name: x
    version: 1
    steps:
      - id: gate
        approval:
          approvers: [alice]
          escalation:
            - {groups: [leads]}
            - {}
    """)
    assert any("$.steps[0].approval.timeout: a stage followed by an escalation needs a timeout" in e for e in found)
    assert any("$.steps[0].approval.escalation[1]: an escalation stage names approvers or groups" in e
               for e in found)


def test_templated_values_inside_lists_and_either_or_params_are_left_to_run_time() -> None:
    plan = compile_source(textwrap.dedent("""\
        name: nested-templates
        version: 1
        parameters:
          node: {type: string, default: node-1}
          deployment: {type: string, default: cart}
        steps:
          - id: nodes
            action: k8s.node_conditions
            params: {nodes: ["${{ params.node }}"]}
          - id: logs
            action: k8s.pod_logs
            params: {namespace: shop, selector: "app=${{ params.deployment }}"}
          - id: wait
            action: k8s.wait_rollout
            params: {namespace: shop, deployment: "${{ params.deployment }}", timeout: 5m}
        """), "nested.yaml", CATALOG).to_json()
    steps = {s["id"]: s for s in plan["steps"]}
    # Every action step gets a heartbeat timeout; the plan carries it to the workflow's activity options.
    assert steps["wait"]["heartbeat_s"] == steps["nodes"]["heartbeat_s"] == DEFAULT_HEARTBEAT_S


def test_a_literal_bad_k8s_param_is_caught_before_anything_runs() -> None:
    with pytest.raises(RunbookErrors) as caught:
        compile_source(textwrap.dedent("""\
            name: bad-k8s
            version: 1
            steps:
              - id: scale
                action: k8s.scale
                params: {namespace: shop, deployment: Cart_Service, replicas: -1}
            """), "bad.yaml", CATALOG)
    text = str(caught.value)
    assert "bad.yaml:6:" in text and "deployment" in text and "replicas" in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("""\
         name: later
         version: 1
         steps:
           - id: first
             action: util.echo
             params: {message: "${{ steps.second.output.message }}"}
           - id: second
             action: util.echo
         """, "rb.yaml:6:13: $.steps[0].params: step 'second' (line 7) comes after 'first': it has no result yet "
              "when 'first' runs (in 'steps.second.output.message')"),
        ("""\
         name: sideways
         version: 1
         steps:
           - id: fan
             parallel:
               - steps: [{id: a, action: util.echo}]
               - steps: [{id: b, action: util.echo, params: {message: "${{ steps.a.output }}"}}]
         """, "step 'a' runs in another branch of parallel step 'fan', at the same time as 'b'"),
        ("""\
         name: other-case
         version: 1
         steps:
           - id: pick
             branch:
               - when: "true"
                 steps: [{id: yes_path, action: util.echo}]
               - default: [{id: no_path, action: util.echo, params: {message: "${{ steps.yes_path.output }}"}}]
         """, "step 'yes_path' is in another case of branch step 'pick': it never runs in the same incident"),
        ("""\
         name: enclosing
         version: 1
         steps:
           - id: box
             branch:
               - when: "true"
                 steps: [{id: inner, action: util.echo, params: {message: "${{ steps.box.output }}"}}]
         """, "step 'inner' runs inside step 'box', which has no result until its body is done"),
        ("""\
         name: loop-leak
         version: 1
         steps:
           - id: each
             foreach: "[1, 2]"
             steps: [{id: body, action: util.echo}]
           - id: after
             action: util.echo
             params: {message: "${{ steps.body.output }}"}
         """, "step 'body' runs once per item inside foreach step 'each': outside the loop read "
              "steps.each.output.iterations"),
        ("""\
         name: from-rollback
         version: 1
         steps:
           - id: fix
             action: util.echo
             params: {message: "${{ steps.undo.output }}"}
             on_failure: rollback
         rollback:
           - id: undo
             action: util.echo
         """, "step 'undo' is in the rollback section, which runs only after a failure"),
    ],
)
def test_references_to_steps_that_have_not_run_are_refused(text: str, expected: str) -> None:
    found = errors_of(text)
    assert any(expected in e for e in found), found


def test_references_that_have_run_compile() -> None:
    plan = compile_text("""\
        name: fine
        version: 1
        steps:
          - id: first
            action: util.echo
          - id: fan
            parallel:
              - steps:
                  - {id: a, action: util.echo, params: {message: "${{ steps.first.output }}"}}
                  - {id: a2, action: util.echo, params: {message: "${{ steps.a.output }}"}}
            outputs: {a: "${{ steps.a2.output }}"}
          - id: each
            foreach: "[1, 2]"
            steps:
              - {id: body, action: util.echo}
              - {id: body2, action: util.echo, params: {message: "${{ steps.body.output }} ${{ steps.first.output }}"}}
          - id: after
            action: util.echo
            params: {message: "${{ steps.fan.output.a }} ${{ steps.each.output.iterations }}"}
            on_failure: rollback
        rollback:
          - {id: undo, action: util.echo, params: {message: "${{ steps.after.error }} ${{ steps.a.output }}"}}
          - {id: undo2, action: util.echo, params: {message: "${{ steps.undo.output }}"}}
        """)
    assert [s["id"] for s in plan["rollback"]] == ["undo", "undo2"]


def test_plan_json_round_trips_through_the_types() -> None:
    wire = compile_text(VALID)
    assert Plan.from_json(wire).to_json() == wire
    legacy = {"runbook": {"name": "old", "version": "1"},
              "steps": [{"id": "a", "kind": "action", "action": "util.echo", "params": {}, "timeout_s": 300.0,
                         "retry": {"max_attempts": 3}}]}
    old = Plan.from_json(legacy)
    assert old.steps[0].retry is not None and old.steps[0].retry.backoff == 2.0, "missing keys take the defaults"
    assert old.steps[0].on_failure.mode == "abort" and old.communication is None


def test_validate_skips_hidden_directories_and_virtualenvs(tmp_path: Path) -> None:
    (tmp_path / ".venv" / "lib").mkdir(parents=True)
    (tmp_path / ".venv" / "lib" / "junk.yaml").write_text("not: a runbook\n")
    (tmp_path / "real.yaml").write_text("name: real\nversion: 1\nsteps:\n  - {id: a, action: util.echo}\n")
    plans, errors = compile_directory([tmp_path], CATALOG)
    assert [p.runbook.name for p in plans] == ["real"] and errors == []


def test_the_schema_and_the_kind_table_agree() -> None:
    """Each step kind's own keys are listed once in incidentctl.dsl.plan.KIND_KEYS; the schema says the same."""
    from incidentctl.dsl.plan import KIND_KEYS, STEP_KINDS
    from incidentctl.dsl.resources import load_schema

    step = load_schema("runbook.schema.json")["$defs"]["step"]
    assert [c["required"][0] for c in step["anyOf"]] == list(STEP_KINDS) == list(KIND_KEYS)
    specific = {key for keys in KIND_KEYS.values() for key in keys}
    assert specific <= set(step["properties"])
    for kind, keys in KIND_KEYS.items():
        refused = set(step["dependentSchemas"][kind]["properties"])
        assert refused == specific - set(keys), kind


def test_every_action_step_heartbeats_and_idempotent_remediations_are_retried() -> None:
    """A dead worker is noticed after DEFAULT_HEARTBEAT_S (an action's own heartbeat_timeout wins); a mutating
    action that declares itself idempotent is retried MUTATING_MAX_ATTEMPTS times by default, any other once."""
    schema = {"type": "object", "properties": {}, "additionalProperties": False}
    catalog = {"t.read": ActionInfo("t.read", schema),
               "t.slow": ActionInfo("t.slow", schema, heartbeat_timeout_s=90.0),
               "t.safe_fix": ActionInfo("t.safe_fix", schema, mutates=True, idempotent=True),
               "t.unsafe_fix": ActionInfo("t.unsafe_fix", schema, mutates=True)}
    plan = compile_source(textwrap.dedent("""\
        name: heartbeats
        version: 1
        steps:
          - {id: read, action: t.read}
          - {id: slow, check: t.slow, assert: 'true'}
          - {id: safe, action: t.safe_fix}
          - {id: unsafe, action: t.unsafe_fix}
          - {id: asked, action: t.unsafe_fix, retry: {max_attempts: 2}}
          - {id: pause, sleep: 1s}
        """), "heartbeats.yaml", catalog).to_json()
    steps = {s["id"]: s for s in plan["steps"]}
    assert {k: s["heartbeat_s"] for k, s in steps.items()} == {
        "read": DEFAULT_HEARTBEAT_S, "slow": 90.0, "safe": DEFAULT_HEARTBEAT_S, "unsafe": DEFAULT_HEARTBEAT_S,
        "asked": DEFAULT_HEARTBEAT_S, "pause": None}
    assert {k: (s["retry"] or {}).get("max_attempts") for k, s in steps.items()} == {
        "read": Retry().max_attempts, "slow": Retry().max_attempts, "safe": MUTATING_MAX_ATTEMPTS,
        "unsafe": NON_IDEMPOTENT_MAX_ATTEMPTS, "asked": 2, "pause": None}
    assert MUTATING_MAX_ATTEMPTS > 1 == NON_IDEMPOTENT_MAX_ATTEMPTS


def test_every_kubernetes_remediation_is_idempotent_and_http_request_is_not() -> None:
    mutating = {name: info.idempotent for name, info in CATALOG.items() if info.mutates}
    assert all(idempotent for name, idempotent in mutating.items() if name.startswith("k8s.")), mutating
    assert mutating["http.request"] is False
