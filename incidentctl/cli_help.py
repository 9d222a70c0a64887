"""Examples shown at the end of `--help` of the main commands (argparse epilogs), keyed by command path."""

from __future__ import annotations

import argparse

EXAMPLES: dict[str, list[str]] = {
    "": [
        "incidentctl dev --simulate-cluster          # a local Temporal, worker, receiver and a broken cluster",
        "export TEMPORAL_ADDRESS=127.0.0.1:7233      # every command then talks to it",
        "incidentctl incident list -w                # incidents, refreshed every 2s",
        "incidentctl incident watch incident-k8s     # follow one live (a unique prefix of its id will do)",
        "source <(incidentctl completion bash)       # tab completion",
    ],
    "incident": [
        "incidentctl incident list --status waiting_approval",
        "incidentctl incident pending",
        "incidentctl incident watch incident-k8s-pod-crashlooping",
    ],
    "incident start": [
        "incidentctl incident start --runbook demo-http-service --param base_url=http://127.0.0.1:8080",
        "incidentctl incident start --runbook runbooks/service-down.yaml --alert alert.json --key web-1 --wait",
        "incidentctl incident start --runbook demo-http-service --param base_url=http://x --dry-run -o json",
    ],
    "incident show": [
        "incidentctl incident show incident-demo-http-service-0123abcd",
        "incidentctl incident show incident-demo-http   # a unique prefix of the id",
        "incidentctl incident show ID -o yaml           # for scripts (the source of the view is in it)",
    ],
    "incident timeline": [
        "incidentctl incident timeline ID",
        "incidentctl incident timeline ID -o json | jq '.[] | select(.kind == \"step_failed\")'",
    ],
    "incident watch": [
        "incidentctl incident watch ID                 # until the incident closes, or Ctrl-C",
        "incidentctl incident watch ID --interval 5",
    ],
    "incident list": [
        "incidentctl incident list --status waiting_approval --severity SEV1",
        "incidentctl incident list --status terminated   # also: cancelled, timed_out, failed",
        "incidentctl incident list -w --interval 5",
        "incidentctl incident list --runbook k8s-pod-crashlooping -o yaml",
    ],
    "incident pending": [
        "incidentctl incident pending",
        "incidentctl incident pending -o json   # exit 1 if a waiting incident could not be read",
    ],
    "incident approve": [
        "incidentctl incident approve ID --as alice --comment 'rollback is safe'",
        "incidentctl incident approve ID --step approve_rollback --as alice",
    ],
    "incident reject": ["incidentctl incident reject ID --as alice --comment 'not during the sale'"],
    "incident close": ["incidentctl incident close ID --as alice",
                       "incidentctl incident close ID --as alice --no-review"],
    "incident review": [
        "incidentctl incident review ID -o review.md",
        "incidentctl incident review ID --set root_cause='bad config in 1.4.3' --as alice",
    ],
    "runbook validate": ["incidentctl runbook validate runbooks/", "incidentctl runbook validate my-runbook.yaml"],
    "report": ["incidentctl report --since 30d --by severity", "incidentctl report --since 2w --png mttr.png"],
    "completion": [
        "source <(incidentctl completion bash)",
        "incidentctl completion bash > ~/.local/share/bash-completion/completions/incidentctl",
        "source <(incidentctl completion zsh)   # in ~/.zshrc",
    ],
}


def add_examples(parser: argparse.ArgumentParser, path: str = "") -> None:
    """Give every parser in the tree with examples an `examples:` epilog, laid out as written."""
    if path in EXAMPLES:
        parser.epilog = "examples:\n" + "\n".join(f"  {line}" for line in EXAMPLES[path])
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
    for action in parser._actions:  # argparse has no public walk of its tree
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                add_examples(sub, f"{path} {name}".strip())
