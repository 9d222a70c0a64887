"""Runbook schema and compiler: valid runbooks compile to the documented plan; each mistake is named at its line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from incidentctl.dsl.catalog import find_runbook
from incidentctl.dsl.compiler import compile_directory, compile_file, compile_source, summarize_plan
from incidentctl.dsl.errors import RunbookErrors

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
"""


def compile_text(text: str) -> dict:
    return compile_source(textwrap.dedent(text), "rb.yaml")


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
                                         "timeout_s": 1800.0, "on_timeout": "approve"}
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


def test_hash_is_stable_and_changes_with_content() -> None:
    first, second = compile_text(VALID), compile_text(VALID)
    assert first["hash"] == second["hash"]
    changed = compile_text(VALID.replace("params: {message: big}", "params: {message: huge}"))
    assert changed["hash"] != first["hash"]


def test_summary_names_steps_approvals_and_rollback() -> None:
    text = summarize_plan(compile_text(VALID))
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
         "rb.yaml:6:13: $.steps[0].colour: unknown key 'colour'"),
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
         "rb.yaml:4:9: $.steps[0].id: 'Bad' does not match the required pattern ^[a-z][a-z0-9_]*$"),
        ("name: x\nversion: 1\nsteps:\n  - id: a\n    sleep: 1s\n    on_failure: explode\n",
         "rb.yaml:6:17: $.steps[0].on_failure: must be one of abort, continue, rollback, not 'explode'"),
        ("name: x\nversion: 1\nsteps:\n  - id: a\n    action: util.echo\n    until: x\n",
         "rb.yaml:6:12: $.steps[0].until: 'until' does not belong in an action step"),
        ("name: x\nversion: 1\nsteps:\n  - id: a\n", "rb.yaml:4:5: $.steps[0]: a step needs one kind key: action, "
         "check, wait_until, approval, sleep, notify, branch, parallel, foreach"),
        ("version: 1\nsteps: []\n", "rb.yaml:1:1: $: missing required key 'name'"),
    ],
)
def test_schema_errors_are_sentences_at_yaml_positions(text: str, expected: str) -> None:
    assert expected in errors_of(text)


def test_yaml_syntax_error_and_duplicate_key_have_positions() -> None:
    assert errors_of("name: x\nsteps: [\n  - id: a\n") == [
        "rb.yaml:3:3: $: YAML syntax error: while parsing a flow sequence expected ',' or ']', but got '-'"
    ] or "YAML syntax error" in errors_of("name: x\nsteps: [\n  - id: a\n")[0]
    assert errors_of("name: x\nversion: 1\nname: y\nsteps: []\n") == [
        "rb.yaml:3:1: $: key 'name' appears twice (first on line 1)"
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
     """, "rb.yaml:6:13: $.steps[0].params: http.check: params: 'url' is a required property"),
    ("""\
     name: x
     version: 1
     steps:
       - id: a
         action: http.check
         params: {url: "${{ params.url }}", timeout: fast}
     """, "rb.yaml:6:13: $.steps[0].params: http.check: params.timeout: 'fast' is not of type 'number'"),
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
     """, "rb.yaml:8:17: $.steps[1].on_failure: jump target 'a' is not a later step in the same list: jumps may only "
          "go forward, so runbooks cannot loop"),
    ("""\
     name: x
     version: 1
     steps:
       - id: a
         sleep: 1s
         next: ghost
     """, "rb.yaml:6:11: $.steps[0].next: jump target 'ghost' is no such step: jumps go to a later step in the same "
          "list"),
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
    plans, errors = compile_directory([ROOT / "runbooks"])
    assert plans and not errors
    (tmp_path / "a.yaml").write_text("name: same\nversion: 1\nsteps: [{id: a, sleep: 1s}]\n")
    (tmp_path / "b.yml").write_text("name: same\nversion: 1\nsteps: [{id: a, sleep: 1s}]\n")
    (tmp_path / "broken.yaml").write_text("name: broken\nversion: 1\nsteps: [{id: a, action: nope.nope}]\n")
    plans, errors = compile_directory([tmp_path])
    assert [p["runbook"]["name"] for p in plans] == ["same"]
    messages = sorted(str(e) for e in errors)
    assert any("runbook name 'same' is already used by" in m for m in messages)
    assert any(m.startswith(f"{tmp_path / 'broken.yaml'}:3:") and "unknown action 'nope.nope'" in m for m in messages)


def test_catalog_finds_by_name_or_path_and_lists_names_when_missing(tmp_path: Path) -> None:
    path = find_runbook("demo-http-service")
    assert path.name == "demo-http-service.yaml"
    assert compile_file(path)["runbook"]["name"] == "demo-http-service"
    with pytest.raises(LookupError, match="no runbook named 'nope' \\(available: .*demo-http-service"):
        find_runbook("nope")
