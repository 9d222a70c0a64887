"""The `incidentctl` command. Every refusal is one sentence on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from incidentctl.output import incident_report, structured, table, timeline_report

if TYPE_CHECKING:
    from incidentctl.dsl.plan import Plan

DEFAULT_ADDRESS = "localhost:7233"
EXIT_OK, EXIT_FAILED = 0, 1
OUTPUT_FORMATS = ("table", "json", "yaml")
# Long enough for a loaded worker to answer a query, short enough that nobody waits long for a dead one.
QUERY_TIMEOUT_S = 3.0
WATCH_INTERVAL_S = 2.0


class CommandError(Exception):
    """A user-facing failure: printed as `error: <message>`."""


def _connect_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", default=os.environ.get("TEMPORAL_ADDRESS", DEFAULT_ADDRESS),
                        help="Temporal frontend host:port (env TEMPORAL_ADDRESS; default %(default)s)")
    parser.add_argument("--namespace", default=os.environ.get("TEMPORAL_NAMESPACE", "default"),
                        help="Temporal namespace (env TEMPORAL_NAMESPACE)")
    parser.add_argument("--task-queue", default=os.environ.get("INCIDENTCTL_TASK_QUEUE", "incidentctl"),
                        help="worker task queue (env INCIDENTCTL_TASK_QUEUE)")


def _live_options(parser: argparse.ArgumentParser, interval: bool = True) -> None:
    parser.add_argument("--query-timeout", type=float, default=QUERY_TIMEOUT_S, metavar="SECONDS",
                        help="how long a worker has to answer before the incident is read from its history "
                             "(default %(default)s)")
    if interval:
        parser.add_argument("--interval", type=float, default=WATCH_INTERVAL_S, metavar="SECONDS",
                            help="seconds between refreshes (default %(default)s)")


def _output_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", "-o", choices=OUTPUT_FORMATS, default="table",
                        help="table for people, json or yaml for scripts")


async def _client(args: argparse.Namespace) -> Any:
    from incidentctl.connection import ConnectionConfigError, connect
    from incidentctl.payload_codec import CodecKeyError

    try:
        client = await connect(args.address, args.namespace)
    except (ConnectionConfigError, CodecKeyError) as exc:
        raise CommandError(str(exc)) from None
    except Exception as exc:  # the SDK raises RuntimeError with a transport message
        raise CommandError(
            f"cannot reach Temporal at {args.address} ({exc}); start one with `incidentctl dev` "
            "or pass --address / TEMPORAL_ADDRESS"
        ) from None
    if getattr(args, "incident", None):
        # Every command that names an incident takes an unambiguous prefix of its id.
        from incidentctl.client import IncidentError, resolve_incident_id

        try:
            args.incident = await resolve_incident_id(client, args.incident)
        except IncidentError as exc:
            raise CommandError(str(exc)) from None
    return client


async def _client_when_reachable(args: argparse.Namespace, stop: asyncio.Event) -> Any:
    """For long-running services (the receiver): wait for Temporal rather than fail (it may start after us);
    None when stopped while waiting."""
    from incidentctl.connection import ConnectionConfigError, connect_when_reachable
    from incidentctl.payload_codec import CodecKeyError

    try:
        return await connect_when_reachable(args.address, args.namespace, stop)
    except (ConnectionConfigError, CodecKeyError) as exc:
        raise CommandError(str(exc)) from None


# ------------------------------------------------------------------ runbook


def cmd_runbook_validate(args: argparse.Namespace) -> int:
    from incidentctl.dsl.plan import walk_steps
    from incidentctl.library import compile_directory, runbook_dirs

    paths = [Path(p) for p in args.paths] or runbook_dirs()
    plans, errors = compile_directory(paths)
    for error in errors:
        print(str(error), file=sys.stderr)
    if not plans and not errors:
        raise CommandError(f"no runbook files (*.yaml, *.yml) found in {' '.join(map(str, paths))}")
    for plan in plans:
        print(f"ok  {plan.source.path}  ({plan.runbook.name} v{plan.runbook.version}, "
              f"{sum(1 for _ in walk_steps(plan.steps))} steps)")
    if errors:
        print(f"{len(errors)} error(s)", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _load_plan(name_or_path: str) -> Plan:
    from incidentctl.dsl.errors import RunbookErrors
    from incidentctl.library import load_plan

    try:
        return load_plan(name_or_path)
    except RunbookErrors as exc:
        raise CommandError("the runbook does not compile:\n" + "\n".join(str(e) for e in exc.errors)) from None
    except (FileNotFoundError, LookupError, ValueError) as exc:
        raise CommandError(str(exc).strip("'\"")) from None


def cmd_runbook_plan(args: argparse.Namespace) -> int:
    from incidentctl.dsl.summary import summarize_plan

    plan = _load_plan(args.runbook)
    print(structured(plan.to_json(), args.output) if args.output != "table" else summarize_plan(plan))
    return EXIT_OK


# ------------------------------------------------------------------ actions


def cmd_actions_list(args: argparse.Namespace) -> int:
    from incidentctl.library import installed_actions

    specs = [info.describe() for _, info in sorted(installed_actions().items())]
    if args.output != "table":
        print(structured(specs, args.output))
        return EXIT_OK
    rows = []
    for spec in specs:
        schema = spec["params"]
        required = set(schema.get("required", []))
        params = ", ".join(
            f"{name}{'*' if name in required else ''}:{prop.get('type', 'any')}"
            for name, prop in schema.get("properties", {}).items()
        )
        rows.append({"action": spec["name"], "mutates": "yes" if spec["mutates"] else "no",
                     "params (* required)": params, "description": spec["description"]})
    print(table(rows, ["action", "mutates", "params (* required)", "description"]))
    return EXIT_OK


# ------------------------------------------------------------------ incidents


def _read_alert(path: str | None) -> dict[str, Any] | None:
    if not path:
        return None
    try:
        alert = json.loads(Path(path).read_text())
    except OSError as exc:
        raise CommandError(f"cannot read alert file {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise CommandError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None
    if not isinstance(alert, dict):
        raise CommandError(f"{path}: an alert must be a JSON object with labels/annotations")
    return alert


async def cmd_incident_start(args: argparse.Namespace) -> int:
    from incidentctl.client import IncidentError, StartedIncident, start_incident
    from incidentctl.params import ParameterError, parse_assignments
    from incidentctl.people_client import RelayError, configured, relay_start

    plan = _load_plan(args.runbook)
    alert = _read_alert(args.alert)
    try:
        params = parse_assignments(args.param or [])
        client = await _client(args)
        if configured() is not None:
            # As the token's owner, through the receiver, which signs the start (its own loaded runbook of that name).
            if alert:
                raise CommandError("--alert is not sent through the receiver: alerts go to its alert endpoints")
            receipt = await relay_start({k: v for k, v in {
                "by": args.started_by, "runbook": plan.runbook.name, "params": params, "key": args.key,
                "severity": args.severity, "dry_run": args.dry_run}.items() if v not in (None, "")})
            started = StartedIncident(**receipt)
        else:
            started = await start_incident(
                client, plan, params=params, alert=alert, key=args.key, severity=args.severity,
                started_by=args.started_by or os.environ.get("USER", ""), dry_run=args.dry_run,
                task_queue=args.task_queue,
            )
    except ParameterError as exc:
        raise CommandError("\n".join(exc.problems)) from None
    except (IncidentError, RelayError) as exc:
        raise CommandError(str(exc)) from None
    if args.output != "table":
        print(structured({"incident_id": started.incident_id, "created": started.created,
                       "plan_hash": plan.hash}, args.output))
    elif started.created:
        print(f"started {started.incident_id} (runbook {plan.runbook.name} v{plan.runbook.version}, "
              f"plan {plan.hash[:12]})")
    else:
        print(f"{started.incident_id} is already running: not started again")
    if args.wait:
        from incidentctl.client import wait_for_runbook
        from incidentctl.watch import narrate_while

        # Progress lines while it waits; on stderr when stdout is for a script.
        stream = sys.stdout if args.output == "table" else sys.stderr
        try:
            result = await narrate_while(
                client, started.incident_id, wait_for_runbook(client, started.incident_id, timeout=args.wait_timeout),
                lambda line: print(line, file=stream, flush=True), args.interval, _query_deadline(args))
        except IncidentError as exc:
            raise CommandError(str(exc)) from None
        print(structured(result, args.output) if args.output != "table" else incident_report(result))
        return EXIT_OK if result.get("outcome") == "succeeded" else EXIT_FAILED
    return EXIT_OK


def _query_deadline(args: argparse.Namespace) -> Any:
    from datetime import timedelta

    return timedelta(seconds=args.query_timeout)


async def cmd_incident_show(args: argparse.Namespace) -> int:
    from incidentctl.client import IncidentError
    from incidentctl.incident_view import read_state

    try:
        view = await read_state(await _client(args), args.incident, _query_deadline(args))
    except IncidentError as exc:
        raise CommandError(str(exc)) from None
    assert view.state is not None
    if view.note:
        # Said on stderr for every format, and inside the JSON/YAML for scripts that keep only stdout.
        print(f"note: {view.note}", file=sys.stderr)
    if args.output != "table":
        print(structured({**view.state, "source": view.source, "source_note": view.note}, args.output))
    else:
        print(incident_report(view.state) + (f"\n\n({view.note})" if view.note else ""))
    return EXIT_OK


async def cmd_incident_timeline(args: argparse.Namespace) -> int:
    from incidentctl.client import IncidentError
    from incidentctl.incident_view import read_timeline

    try:
        view = await read_timeline(await _client(args), args.incident, _query_deadline(args))
    except IncidentError as exc:
        raise CommandError(str(exc)) from None
    if view.note:
        print(f"note: {view.note}", file=sys.stderr)
    print(structured(view.timeline, args.output) if args.output != "table" else timeline_report(view.timeline))
    return EXIT_OK


async def cmd_incident_watch(args: argparse.Namespace) -> int:
    from incidentctl.client import IncidentError
    from incidentctl.watch import follow

    client = await _client(args)
    print(f"watching {args.incident} (Ctrl-C to stop)", flush=True)
    try:
        await follow(client, args.incident, lambda line: print(line, flush=True), args.interval, _query_deadline(args))
    except IncidentError as exc:
        raise CommandError(str(exc)) from None
    return EXIT_OK


async def cmd_incident_list(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from incidentctl.client import list_incidents

    client = await _client(args)
    columns = ["incident_id", "status", "severity", "runbook", "service", "started_at"]
    while True:
        rows = await list_incidents(client, status=args.status, severity=args.severity,
                                    runbook=args.runbook, service=args.service, limit=args.limit)
        text = structured(rows, args.output) if args.output != "table" else table(rows, columns)
        if not args.watch:
            print(text)
            return EXIT_OK
        if args.output != "table":
            print(text, flush=True)  # one document per refresh, nothing around it
        else:
            if sys.stdout.isatty():
                print("\x1b[H\x1b[2J", end="")  # a refreshing screen, as `watch` draws it
            print(f"{datetime.now(UTC).isoformat(timespec='seconds')}  every {args.interval:g}s (Ctrl-C to stop)\n"
                  f"{text}\n", flush=True)
        await asyncio.sleep(args.interval)


def _time_left(seconds: int | None) -> str:
    if seconds is None:
        return "no deadline"
    if seconds < 0:
        return "overdue"
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


async def cmd_incident_pending(args: argparse.Namespace) -> int:
    from incidentctl.client import pending_approvals
    from workflows.messages import next_run_text

    unanswered: list[str] = []
    rows = await pending_approvals(await _client(args), limit=args.limit, unanswered=unanswered)
    if unanswered:
        # Listed as waiting for approval, but nobody could ask them what: never a silent "(none)".
        print(f"{len(unanswered)} incident(s) wait for approval but did not answer (is a worker running?): "
              + ", ".join(unanswered), file=sys.stderr)
    if args.output != "table":
        print(structured(rows, args.output))
        return EXIT_FAILED if unanswered else EXIT_OK
    flat = [{"incident": r["incident_id"], "step": r["step"], "severity": r["severity"],
             "requested_at": r["requested_at"], "time_left": _time_left(r["time_left_s"]),
             "votes": f"{sum(v['approve'] for v in r['votes'])}/{r['required']}",
             "who": ", ".join(r["approvers"] + [f"group:{g}" for g in r["groups"]]) or "anyone",
             "asks": r["message"],
             "will_run": next_run_text(r["will_run"]) if r.get("will_run") else None} for r in rows]
    print(table(flat, ["incident", "step", "severity", "requested_at", "time_left", "votes", "who", "asks",
                       "will_run"]))
    return EXIT_FAILED if unanswered else EXIT_OK


async def _relayed(incident: str, command: Any) -> dict[str, Any] | None:
    """`command` sent through the receiver as the person whose token is set (incidentctl/people_client.py), or
    None when no token is: then it goes straight to Temporal."""
    from incidentctl.people_client import RelayError, relay_command

    try:
        return await relay_command(incident, command)
    except RelayError as exc:
        raise CommandError(str(exc)) from None


async def cmd_incident_cancel(args: argparse.Namespace) -> int:
    from incidentctl.client import IncidentError, cancel_incident

    try:
        await cancel_incident(await _client(args), args.incident)
    except IncidentError as exc:
        raise CommandError(str(exc)) from None
    print(f"cancellation requested for {args.incident}")
    return EXIT_OK


async def cmd_incident_decide(args: argparse.Namespace) -> int:
    from incidentctl.client import IncidentError, decide
    from workflows.model import ApprovalDecision, ApprovalReceipt

    decision = ApprovalDecision(approver=args.as_user, approve=args.command == "approve",
                                step=args.step or "", comment=args.comment or "")
    try:
        relayed = await _relayed(args.incident, decision)
        receipt = (ApprovalReceipt(**relayed) if relayed is not None
                   else await decide(await _client(args), args.incident, decision))
    except IncidentError as exc:
        raise CommandError(str(exc)) from None
    if args.output != "table":
        print(structured(receipt.__dict__, args.output))
    else:
        print(f"{'approved' if receipt.approve else 'rejected'} step {receipt.step} as {receipt.approver}: "
              f"{receipt.approvals}/{receipt.required} approvals, outcome {receipt.outcome}")
    return EXIT_OK


async def cmd_incident_assign(args: argparse.Namespace) -> int:
    from incidentctl.client import IncidentError, acknowledge_incident, assign_incident
    from workflows.model import Acknowledgement, Assignment

    command = (Acknowledgement(by=args.as_user) if args.command == "ack" else
               Assignment(by=args.as_user, commander=args.commander or "", assignee=args.assignee or ""))
    relayed = await _relayed(args.incident, command)
    try:
        if relayed is not None:
            roles = relayed
        elif isinstance(command, Acknowledgement):
            roles = await acknowledge_incident(await _client(args), args.incident, command)
        else:
            roles = await assign_incident(await _client(args), args.incident, command)
    except IncidentError as exc:
        raise CommandError(str(exc)) from None
    if args.output != "table":
        print(structured(roles, args.output))
    else:
        ack = (f"acknowledged by {roles['acknowledged_by']} after {roles['time_to_ack_s']}s"
               if roles.get("acknowledged_by") else "not acknowledged")
        print(f"commander {roles['commander'] or '-'}, assignee {roles['assignee'] or '-'}; {ack}")
    return EXIT_OK


async def cmd_incident_command(args: argparse.Namespace) -> int:
    """note, severity, resolve, reopen, close, run: a person steers an open incident (validated updates)."""
    from incidentctl import client as incidents
    from incidentctl.params import ParameterError, parse_assignments
    from incidentctl.people_client import RelayError, configured, relay
    from workflows.model import Closure, CommandReceipt, Note, Reopening, Resolution, SeverityChange

    by = args.as_user
    commands = {
        "note": lambda: (Note(by=by, text=" ".join(args.text)), incidents.add_note),
        "severity": lambda: (SeverityChange(by=by, severity=args.severity, reason=args.reason or ""),
                             incidents.change_severity),
        "resolve": lambda: (Resolution(by=by, summary=args.summary or ""), incidents.resolve_incident),
        "reopen": lambda: (Reopening(by=by, reason=args.reason or ""), incidents.reopen_incident),
        "close": lambda: (Closure(by=by, no_review=args.no_review, reason=args.reason or ""),
                          incidents.close_incident),
    }
    try:
        if args.command in commands:
            command, send = commands[args.command]()
            relayed = await _relayed(args.incident, command)
            receipt = (CommandReceipt(**relayed) if relayed is not None
                       else await send(await _client(args), args.incident, command))
        else:
            plan, params = _load_plan(args.runbook), parse_assignments(args.param or [])
            if configured() is not None:  # the receiver runs its own loaded runbook of that name
                receipt = CommandReceipt(**await relay(args.incident, "runbooks", {
                    "by": by, "runbook": plan.runbook.name, "params": params}))
            else:
                receipt = await incidents.run_runbook(await _client(args), args.incident, plan, params, by)
    except ParameterError as exc:
        raise CommandError("\n".join(exc.problems)) from None
    except (incidents.IncidentError, RelayError) as exc:
        raise CommandError(str(exc)) from None
    if args.output != "table":
        print(structured(receipt.__dict__, args.output))
    else:
        print(f"{args.command}: done; incident {receipt.incident_id} is {receipt.status}")
    return EXIT_OK


async def cmd_incident_review(args: argparse.Namespace) -> int:
    from incidentctl.client import IncidentError
    from incidentctl.review import load_review, post_to_github
    from incidentctl.review_markdown import review_markdown

    if args.set:
        return await _edit_review(args)
    client = await _client(args)
    try:
        review, history = await load_review(client, args.incident)
    except IncidentError as exc:
        raise CommandError(str(exc)) from None
    markdown = review_markdown(review)
    text = structured(review, args.format) if args.format != "md" else markdown
    if args.file:
        try:
            Path(args.file).write_text(text if text.endswith("\n") else text + "\n")
        except OSError as exc:
            raise CommandError(f"cannot write {args.file}: {exc.strerror}") from None
        print(f"wrote the review of {args.incident} to {args.file} ({args.format})")
    else:
        print(text, end="" if text.endswith("\n") else "\n")
    for problem in review["missing"]:
        print(f"note: {problem}", file=sys.stderr)
    if args.post_github:
        try:
            posted = await post_to_github(history, review, markdown)
        except IncidentError as exc:
            raise CommandError(str(exc)) from None
        print(f"posted the review to GitHub issue #{posted['issue']}", file=sys.stderr if not args.file else sys.stdout)
    return EXIT_OK


async def _edit_review(args: argparse.Namespace) -> int:
    from incidentctl.client import IncidentError, incident_state, update_review
    from incidentctl.review import LIST_FIELDS, ReviewEditError, review_fields
    from workflows.model import CommandReceipt, ReviewEdit

    by = (args.as_user or os.environ.get("USER", "")).strip()
    if not by:
        raise CommandError("say who edits the review (--as NAME)")
    try:
        fields = review_fields(args.set, replace=True)  # refuses a bad --set before anything is asked
    except ReviewEditError as exc:
        raise CommandError(str(exc)) from None
    client = await _client(args)
    try:
        if not args.replace and set(fields) & {*LIST_FIELDS, "action_items"}:
            # A list grows by what is given here, and the edit carries the whole list: read it first.
            current = (await incident_state(client, args.incident)).get("review") or {}
            fields = review_fields(args.set, current)
        edit = ReviewEdit(by=by, fields=fields)
        relayed = await _relayed(args.incident, edit)
        answer = CommandReceipt(**relayed) if relayed is not None else await update_review(client, args.incident, edit)
    except IncidentError as exc:
        raise CommandError(str(exc)) from None
    if args.format != "md":
        print(structured({"incident_id": args.incident, "by": by, "fields": fields, "answer": answer.__dict__},
                         args.format))
    else:
        print(f"review of {args.incident} updated by {by}: {', '.join(sorted(fields))}")
    return EXIT_OK


async def cmd_report(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from incidentctl.output import report_table
    from incidentctl.report import ReportError, build_report, collect_figures, parse_since

    until = datetime.now(UTC)
    try:
        since = parse_since(args.since, until)
        client = await _client(args)
        incidents = await collect_figures(client, since, limit=args.limit)
        report = build_report(incidents, args.by, since, until)
    except ReportError as exc:
        raise CommandError(str(exc)) from None
    if args.output != "table":
        print(structured(report, args.output))
    else:
        print(report_table(report))
    if args.png:
        from incidentctl.report_chart import render_png

        try:
            render_png(report, Path(args.png))
        except OSError as exc:
            raise CommandError(f"cannot write {args.png}: {exc.strerror}") from None
        print(f"wrote the chart to {args.png}", file=sys.stderr if args.output != "table" else sys.stdout)
    return EXIT_OK


async def cmd_admin_setup(args: argparse.Namespace) -> int:
    from incidentctl.devserver import ensure_search_attributes

    client = await _client(args)
    added = await ensure_search_attributes(client, args.namespace)
    print(f"search attributes ready in namespace {args.namespace}" + (f" (added {added})" if added else ""))
    return EXIT_OK


# ------------------------------------------------------------------ receiver


async def cmd_receiver(args: argparse.Namespace) -> int:
    from incidentctl.intake.runner import auth_from_env, start_receiver
    from incidentctl.process import stop_on_signals

    # A long-running service: timestamped log lines (waiting for Temporal, runbooks not loaded) for its operator.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    auth = auth_from_env(insecure=args.insecure)
    if args.token:
        auth = type(auth)(token=args.token, hmac_secret=auth.hmac_secret, insecure=auth.insecure)
    stop = stop_on_signals()
    client = await _client_when_reachable(args, stop)
    if client is None:
        return EXIT_OK
    try:
        receiver = await start_receiver(client, host=args.host, port=args.port, auth=auth,
                                        task_queue=args.task_queue)
    except (ValueError, OSError) as exc:
        raise CommandError(str(exc)) from None
    print(f"alert receiver   {receiver.url}/alertmanager  ({len(receiver.intake.router.routes)} routed runbooks)")
    await stop.wait()
    await receiver.stop()
    print("alert receiver stopped")
    return EXIT_OK


def cmd_codec_key(args: argparse.Namespace) -> int:
    from incidentctl.payload_codec import new_key

    print(new_key(args.key_id))
    return EXIT_OK


async def cmd_codec_serve(args: argparse.Namespace) -> int:
    from incidentctl.codec_server import create_codec_app
    from incidentctl.localhttp import serve
    from incidentctl.payload_codec import CodecKeyError, EncryptionCodec, keys_from_env
    from incidentctl.process import stop_on_signals

    try:
        keys = keys_from_env()
        if not keys:
            raise CommandError("no keys: set INCIDENTCTL_PAYLOAD_KEYS (make one with `incidentctl codec key`)")
        codec = EncryptionCodec(keys)
    except CodecKeyError as exc:
        raise CommandError(str(exc)) from None
    runner, url = await serve(create_codec_app(codec, token=args.token, origin=args.origin), args.host, args.port)
    print(f"codec server {url} (POST /decode, /encode); point the Temporal UI's codec endpoint at it", flush=True)
    await stop_on_signals().wait()
    await runner.cleanup()
    return EXIT_OK


def cmd_identity_key(args: argparse.Namespace) -> int:
    from incidentctl.identity import new_signing_key, signing_key_line

    key = new_signing_key(args.key_id)
    print("# the receiver: signs people's commands it verified (keep it secret, like a password)")
    print(f"INCIDENTCTL_IDENTITY_SIGNING_KEY={signing_key_line(key)}")
    print("# every worker: trusts commands signed with it (add to the list to rotate: k2=...,k1=...)")
    print(f"INCIDENTCTL_IDENTITY_KEYS={key.public_line()}")
    return EXIT_OK


def cmd_people_token(args: argparse.Namespace) -> int:
    from incidentctl.people import new_token

    token, line = new_token(args.person)
    print(f"token for {args.person} (shown once; give it to them, keep it out of files and chats):\n  {token}\n")
    print("add this under `people:` in the people file (INCIDENTCTL_PEOPLE):")
    print(line)
    return EXIT_OK


def cmd_alerts_unrouted(args: argparse.Namespace) -> int:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(args.receiver.rstrip("/") + "/alerts/unrouted")
    token = args.token or os.environ.get("INCIDENTCTL_RECEIVER_TOKEN")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            rows = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise CommandError(f"the receiver refused: HTTP {exc.code} {exc.read().decode(errors='replace')}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise CommandError(f"cannot reach the receiver at {args.receiver}: {exc}") from None
    if args.output != "table":
        print(structured(rows, args.output))
    else:
        flat = [{"received_at": r["received_at"], "alertname": r["labels"].get("alertname"),
                 "status": r["status"], "reason": r["reason"], "labels": r["labels"]} for r in rows]
        print(table(flat, ["received_at", "alertname", "status", "reason", "labels"]))
    return EXIT_OK


# ------------------------------------------------------------------ dev and demo


def cmd_dev(args: argparse.Namespace) -> int:
    from incidentctl.devloop import run_dev
    from incidentctl.promstack import PromStackError

    if args.with_prometheus and not args.simulate_cluster:
        raise CommandError("--with-prometheus scrapes the simulated cluster: add --simulate-cluster")
    if args.metrics_address:
        from incidentctl.worker_health import parse_bind_address

        try:
            parse_bind_address(args.metrics_address, "--metrics-address")
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    try:
        return run_dev(args)
    except PromStackError as exc:
        raise CommandError(str(exc)) from None


def cmd_demo(args: argparse.Namespace) -> int:
    from incidentctl.demo import run_demo

    return run_demo(args)


def cmd_completion(args: argparse.Namespace) -> int:
    from incidentctl.completion import SCRIPTS

    print(SCRIPTS[args.shell](build_parser()), end="")
    return EXIT_OK


# ------------------------------------------------------------------ parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("incidentctl")
    except PackageNotFoundError:
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="incidentctl", description="Alert-triggered runbook automation on Temporal.")
    parser.add_argument("--version", action="version", version=f"incidentctl {_version()}")
    commands = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")

    dev = commands.add_parser("dev", help="run the embedded Temporal dev server and a worker until Ctrl-C")
    dev.add_argument("--port", type=int, default=7233, help="Temporal frontend port (default %(default)s)")
    dev.add_argument("--ui-port", type=int, default=8233, help="Temporal Web UI port (default %(default)s)")
    dev.add_argument("--db-file", default=".incidentctl/temporal.db",
                     help="SQLite file that keeps incidents across restarts (default %(default)s)")
    dev.add_argument("--task-queue", default="incidentctl")
    dev.add_argument("--receiver-port", type=int, default=9095, help="alert receiver port (default %(default)s)")
    dev.add_argument("--metrics-address", metavar="HOST:PORT",
                     help="serve the worker's Prometheus metrics (the Temporal SDK's and incidentctl_*) here")
    dev.add_argument("--simulate-cluster", action="store_true",
                     help="also run the simulated Kubernetes API server; the worker's k8s actions use it")
    dev.add_argument("--scenario", action="append", metavar="NAME",
                     help="simulated incident(s) to seed (bad-rollout [default], oom, node-not-ready, "
                          "replicas-mismatch, healthy); repeatable")
    dev.add_argument("--with-prometheus", action="store_true",
                     help="also run Prometheus (the shipped rules over the simulated cluster) and Alertmanager "
                          "(posting to the receiver); needs --simulate-cluster and Debian's prometheus packages")
    dev.add_argument("--prometheus-port", type=int, default=9090, help="(default %(default)s)")
    dev.add_argument("--alertmanager-port", type=int, default=9093, help="(default %(default)s)")
    dev.set_defaults(handler=cmd_dev)

    demo = commands.add_parser("demo", help="run one sample incident end to end on an embedded server")
    demo.add_argument("--keep-running", action="store_true", help="leave the server up after the demo")
    demo.add_argument("--scenario", choices=["kubernetes", "http"], default="kubernetes",
                      help="kubernetes: a crash-looping rollout on a simulated cluster (default); http: a web "
                           "service restarted after approval")
    demo.set_defaults(handler=cmd_demo)

    runbook = commands.add_parser("runbook", help="validate runbooks and show compiled plans")
    runbook_cmds = runbook.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    validate = runbook_cmds.add_parser("validate", help="check runbook files or directories (exit 1 on errors)")
    validate.add_argument("paths", nargs="*",
                          help="files or directories (default: $INCIDENTCTL_RUNBOOKS, else the shipped runbooks)")
    validate.set_defaults(handler=cmd_runbook_validate)
    plan = runbook_cmds.add_parser("plan", help="show the compiled plan of a runbook (name or path)")
    plan.add_argument("runbook")
    _output_option(plan)
    plan.set_defaults(handler=cmd_runbook_plan)

    actions = commands.add_parser("actions", help="the registered actions")
    actions_cmds = actions.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    actions_list = actions_cmds.add_parser("list", help="every action with its parameter schema")
    _output_option(actions_list)
    actions_list.set_defaults(handler=cmd_actions_list)

    incident = commands.add_parser("incident", help="start, follow and steer incidents")
    incident_cmds = incident.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")

    start = incident_cmds.add_parser("start", help="start an incident from a runbook")
    start.add_argument("--runbook", required=True, help="runbook name (from runbooks/) or file path")
    start.add_argument("--param", action="append", metavar="NAME=VALUE", help="a runbook parameter (repeat)")
    start.add_argument("--alert", help="JSON file with the alert (labels, annotations, ...)")
    start.add_argument("--key", help="incident key: the same key never makes a second running incident")
    start.add_argument("--severity", choices=("SEV1", "SEV2", "SEV3", "SEV4"))
    start.add_argument("--started-by", help="who starts it (default $USER)")
    start.add_argument("--dry-run", action="store_true", help="mutating actions only report what they would do")
    start.add_argument("--wait", action="store_true",
                       help="wait for the runbook to finish and show the incident (exit 1 unless it succeeded)")
    start.add_argument("--wait-timeout", type=float, default=3600.0, metavar="SECONDS")
    _live_options(start)
    _connect_options(start)
    _output_option(start)
    start.set_defaults(handler=cmd_incident_start)

    for name, handler, helptext in (("show", cmd_incident_show, "status, current step and every step's result"),
                                    ("timeline", cmd_incident_timeline, "every event of the incident"),
                                    ("watch", cmd_incident_watch, "follow the incident live until it closes"),
                                    ("cancel", cmd_incident_cancel, "cancel a running incident")):
        sub = incident_cmds.add_parser(name, help=helptext)
        sub.add_argument("incident", help="incident id (or a unique prefix of it)")
        _connect_options(sub)
        if name in ("show", "timeline", "watch"):
            _live_options(sub, interval=name == "watch")
        if name in ("show", "timeline"):
            _output_option(sub)
        sub.set_defaults(handler=handler)

    listing = incident_cmds.add_parser("list", help="list incidents (newest first)")
    listing.add_argument("--status", help="an incident status (waiting_approval, resolved, ...), or how its workflow "
                                          "ended from outside: terminated, cancelled, timed_out, failed")
    listing.add_argument("--severity", choices=("SEV1", "SEV2", "SEV3", "SEV4"))
    listing.add_argument("--runbook")
    listing.add_argument("--service")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--watch", "-w", action="store_true", help="refresh the list until Ctrl-C")
    listing.add_argument("--interval", type=float, default=WATCH_INTERVAL_S, metavar="SECONDS",
                         help="with --watch: seconds between refreshes (default %(default)s)")
    _connect_options(listing)
    _output_option(listing)
    listing.set_defaults(handler=cmd_incident_list)

    assign = incident_cmds.add_parser("assign", help="set the incident commander and/or assignee")
    assign.add_argument("incident")
    assign.add_argument("--commander")
    assign.add_argument("--assignee")
    assign.add_argument("--as", dest="as_user", required=True, metavar="USER")
    ack = incident_cmds.add_parser("ack", help="acknowledge the incident (records time to acknowledge)")
    ack.add_argument("incident")
    ack.add_argument("--as", dest="as_user", required=True, metavar="USER")
    for sub in (assign, ack):
        _connect_options(sub)
        _output_option(sub)
        sub.set_defaults(handler=cmd_incident_assign)

    people = {
        "note": "add a note to the incident's timeline",
        "severity": "re-classify the incident (cadence and escalation follow; stakeholders are told)",
        "resolve": "resolve the incident now (a person's call; its alerts need not have cleared)",
        "reopen": "re-open a resolved incident",
        "close": "close a resolved incident (SEV1/SEV2: after its review, or --no-review)",
        "run": "run another runbook inside the open incident",
    }
    for name, helptext in people.items():
        sub = incident_cmds.add_parser(name, help=helptext)
        sub.add_argument("incident", help="incident id")
        sub.add_argument("--as", dest="as_user", required=True, metavar="USER", help="who does it")
        if name == "note":
            sub.add_argument("text", nargs="+")
        if name == "severity":
            sub.add_argument("severity", choices=("SEV1", "SEV2", "SEV3", "SEV4"))
        if name in ("severity", "reopen", "close"):
            sub.add_argument("--reason")
        if name == "resolve":
            sub.add_argument("--summary", help="what was done and why it is over")
        if name == "close":
            sub.add_argument("--no-review", action="store_true", help="close a SEV1/SEV2 without its review")
        if name == "run":
            sub.add_argument("--runbook", required=True, help="runbook name or file path")
            sub.add_argument("--param", action="append", metavar="NAME=VALUE")
        _connect_options(sub)
        _output_option(sub)
        sub.set_defaults(handler=cmd_incident_command)


    review = incident_cmds.add_parser(
        "review", help="the blameless post-incident review from the incident's history; --set edits it",
        description="Print (or write) the post-incident review built from the incident's Temporal history and "
                    "summary, or edit the parts people write with --set.")
    review.add_argument("incident", help="incident id")
    review.add_argument("--format", choices=("md", "json", "yaml"), default="md",
                        help="Markdown (default), JSON or YAML")
    review.add_argument("-o", dest="file", metavar="FILE", help="write the review to FILE instead of printing it")
    review.add_argument("--set", action="append", metavar="NAME=VALUE",
                        help="edit the review: summary, impact, root_cause, what_went_well, what_to_improve, "
                             "action_items (\"TEXT @OWNER\"), completed (true|false); repeat; a list field takes "
                             "one item per --set, added to the items it has")
    review.add_argument("--replace", action="store_true", help="with --set: list fields replace the items it has")
    review.add_argument("--as", dest="as_user", metavar="NAME", help="who edits (default $USER)")
    review.add_argument("--post-github", action="store_true",
                        help="also post the Markdown to the incident's GitHub issue (the runbook's github channel)")
    _connect_options(review)
    review.set_defaults(handler=cmd_incident_review)

    pending = incident_cmds.add_parser("pending", help="every approval waiting across incidents, oldest first")
    pending.add_argument("--limit", type=int, default=200)
    _connect_options(pending)
    _output_option(pending)
    pending.set_defaults(handler=cmd_incident_pending)

    for name in ("approve", "reject"):
        sub = incident_cmds.add_parser(name, help=f"{name} a waiting approval step")
        sub.add_argument("incident", help="incident id")
        sub.add_argument("--step", help="the approval step (needed when several wait)")
        sub.add_argument("--as", dest="as_user", required=True, metavar="USER", help="who decides")
        sub.add_argument("--comment")
        _connect_options(sub)
        _output_option(sub)
        sub.set_defaults(handler=cmd_incident_decide)

    report = commands.add_parser("report", help="MTTA/MTTM/MTTR, automation and approval waits over a period")
    report.add_argument("--since", default="30d", help="a duration before now (30d, 12h, 2w) or a date "
                                                       "(2024-05-01); default %(default)s")
    report.add_argument("--by", choices=("severity", "runbook", "service"), help="one row per group")
    report.add_argument("--png", metavar="FILE", help="also draw the figures as a PNG chart")
    report.add_argument("--limit", type=int, default=1000, help="at most this many incidents (default %(default)s)")
    _connect_options(report)
    _output_option(report)
    report.set_defaults(handler=cmd_report)

    receiver = commands.add_parser("receiver", help="the HTTP alert receiver (Alertmanager webhooks, /alerts)")
    receiver.add_argument("--host", default="127.0.0.1")
    receiver.add_argument("--port", type=int, default=9095)
    receiver.add_argument("--token", help="bearer token (default: env INCIDENTCTL_RECEIVER_TOKEN)")
    receiver.add_argument("--insecure", action="store_true",
                          help="accept unauthenticated requests (local development only)")
    _connect_options(receiver)
    receiver.set_defaults(handler=cmd_receiver)

    alerts = commands.add_parser("alerts", help="alerts the receiver has seen")
    alerts_cmds = alerts.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    unrouted = alerts_cmds.add_parser("unrouted", help="recent alerts no runbook took, with the reason")
    unrouted.add_argument("--receiver", default=os.environ.get("INCIDENTCTL_RECEIVER_URL", "http://127.0.0.1:9095"),
                          help="receiver URL (env INCIDENTCTL_RECEIVER_URL)")
    unrouted.add_argument("--token", help="bearer token (default: env INCIDENTCTL_RECEIVER_TOKEN)")
    _output_option(unrouted)
    unrouted.set_defaults(handler=cmd_alerts_unrouted)

    people = commands.add_parser("people", help="people's API tokens for the receiver's people endpoints")
    people_cmds = people.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    token = people_cmds.add_parser("token", help="make an API token for a person (prints it once, and the "
                                                 "people-file line that stores only its hash)")
    token.add_argument("person", help="who the token speaks for, as named in the people file's groups")
    token.set_defaults(handler=cmd_people_token)

    identity = commands.add_parser("identity", help="verified people: the receiver's signing key and the "
                                                    "workers' trusted keys")
    identity_cmds = identity.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    identity_key = identity_cmds.add_parser(
        "key", help="print a new key pair: INCIDENTCTL_IDENTITY_SIGNING_KEY for the receiver (secret), "
                    "INCIDENTCTL_IDENTITY_KEYS for every worker")
    identity_key.add_argument("key_id", nargs="?", default="k1", help="the key's id (default %(default)s)")
    identity_key.set_defaults(handler=cmd_identity_key)

    codec = commands.add_parser("codec", help="payload encryption: keys, and the codec server for the Temporal UI")
    codec_cmds = codec.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    codec_key = codec_cmds.add_parser("key", help="print a new key entry for INCIDENTCTL_PAYLOAD_KEYS")
    codec_key.add_argument("key_id", nargs="?", default="k1", help="the key's id (default %(default)s)")
    codec_key.set_defaults(handler=cmd_codec_key)
    codec_serve = codec_cmds.add_parser("serve", help="decode/encode payloads for the Temporal UI (codec server)")
    codec_serve.add_argument("--host", default="127.0.0.1")
    codec_serve.add_argument("--port", type=int, default=8888)
    codec_serve.add_argument("--origin", help="the Temporal UI's origin, allowed by CORS (e.g. http://localhost:8233)")
    codec_serve.add_argument("--token", default=os.environ.get("INCIDENTCTL_CODEC_TOKEN"),
                             help="require Authorization: Bearer TOKEN (env INCIDENTCTL_CODEC_TOKEN)")
    codec_serve.set_defaults(handler=cmd_codec_serve)

    admin = commands.add_parser("admin", help="cluster setup")
    admin_cmds = admin.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    setup = admin_cmds.add_parser("setup", help="register incidentctl's search attributes on a Temporal cluster")
    _connect_options(setup)
    setup.set_defaults(handler=cmd_admin_setup)

    completion = commands.add_parser("completion", help="print a shell completion script (bash or zsh)")
    completion.add_argument("shell", choices=("bash", "zsh"))
    completion.set_defaults(handler=cmd_completion)

    from incidentctl.cli_help import add_examples

    add_examples(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    from incidentctl.process import INTERRUPTED, until_interrupted

    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int | Coroutine[Any, Any, int]] = args.handler
    try:
        outcome = handler(args)
        if asyncio.iscoroutine(outcome):
            outcome = asyncio.run(until_interrupted(outcome))
        return int(outcome)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:  # Ctrl-C in a command that runs no loop, or before its loop runs
        return INTERRUPTED
    except Exception as exc:  # last resort: one line, not a traceback; INCIDENTCTL_DEBUG=1 shows it
        if os.environ.get("INCIDENTCTL_DEBUG"):
            raise
        print(f"error: {type(exc).__name__}: {exc} (set INCIDENTCTL_DEBUG=1 for details)", file=sys.stderr)
        return EXIT_FAILED


def run() -> None:
    """Console entry point (see exit_without_finalizing for why it does not simply return)."""
    from incidentctl import tracing
    from incidentctl.process import exit_without_finalizing

    code = main()
    tracing.flush()
    exit_without_finalizing(code)


if __name__ == "__main__":
    run()
