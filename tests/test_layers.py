"""The house rule: imports point down only (docs/design.md, "Layout").

support <- language (incidentctl.dsl) <- actions (activities/) <- engine (workflows/) <- service <- CLI and dev
tools. Every module of ours has a room in LAYERS (a new module fails here until it is given one), and every
import, lazy ones inside functions included, goes to the same layer or a lower one. The simulated Kubernetes
API server stands alone: it imports only itself and the support layer, so it stays an independent witness.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("incidentctl", "workflows", "activities")

# Lowest first; a module belongs to the layer of the longest prefix that names it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("support", ("incidentctl.process", "incidentctl.localhttp", "incidentctl.schemas", "incidentctl.runbooks",
                 "incidentctl")),
    ("language", ("incidentctl.dsl",)),
    ("actions", ("activities",)),
    ("engine", ("workflows",)),
    ("service", ("incidentctl.client", "incidentctl.params", "incidentctl.people", "incidentctl.intake",
                 "incidentctl.library", "incidentctl.workers", "incidentctl.target_leases", "worker",
                 "incidentctl.worker_health", "incidentctl.worker_metrics", "incidentctl.rbac", "incidentctl.tracing",
                 "incidentctl.connection", "incidentctl.payload_codec", "incidentctl.codec_server",
                 "incidentctl.plan_signing", "incidentctl.identity_policy", "incidentctl.people_client",
                 "incidentctl.history", "incidentctl.summaries", "incidentctl.incident_times", "incidentctl.review",
                 "incidentctl.review_timeline", "incidentctl.review_markdown", "incidentctl.report",
                 "incidentctl.incident_view", "incidentctl.step_progress", "incidentctl.ui_texts")),
    ("tools", ("incidentctl.cli", "incidentctl.demo", "incidentctl.demo_service", "incidentctl.devloop",
               "incidentctl.devserver", "incidentctl.output", "incidentctl.promstack", "incidentctl.k8ssim",
               "incidentctl.report_chart", "incidentctl.watch", "incidentctl.completion", "incidentctl.cli_help",
               "incidentctl.gkesim")),
]
STANDALONE = {"incidentctl.k8ssim": ("incidentctl.k8ssim", "incidentctl.process", "incidentctl.localhttp"),
              "incidentctl.gkesim": ("incidentctl.gkesim", "incidentctl.process", "incidentctl.localhttp")}


def _matches(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, layer index)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if _matches(module, prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return best[1] if best else None


def our_modules() -> dict[str, Path]:
    modules = {"worker": ROOT / "worker.py"}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imports_of(path: Path, module: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing package
                base = module.split(".")[: -node.level] if path.name != "__init__.py" else module.split(".")
                found.append(".".join([*base, node.module] if node.module else base))
            else:
                found.append(node.module or "")
    return [name for name in found if name.split(".")[0] in (*PACKAGES, "worker")]


def test_every_module_has_a_room() -> None:
    homeless = [module for module in our_modules() if layer_of(module) is None]
    assert homeless == [], "give these a layer in tests/test_layers.py LAYERS (and docs/design.md)"


def test_imports_point_down_only() -> None:
    upward = []
    for module, path in sorted(our_modules().items()):
        own = layer_of(module)
        assert own is not None
        for target in imports_of(path, module):
            theirs = layer_of(target)
            if theirs is not None and theirs > own:
                upward.append(f"{module} ({LAYERS[own][0]}) imports {target} ({LAYERS[theirs][0]})")
    assert upward == []


def test_the_simulator_stands_alone() -> None:
    leaks = []
    for module, path in our_modules().items():
        for owner, allowed in STANDALONE.items():
            if _matches(module, owner):
                leaks += [f"{module} imports {t}" for t in imports_of(path, module)
                          if not any(_matches(t, a) for a in allowed)]
    assert leaks == []


def test_the_rule_catches_an_upward_import(tmp_path: Path) -> None:
    """The check itself: a language module importing the engine is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("from workflows.model import RUNNING\n\ndef later():\n    import incidentctl.cli\n")
    targets = imports_of(bad, "incidentctl.dsl.bad")
    assert targets == ["workflows.model", "incidentctl.cli"]
    assert all(layer_of(t) > layer_of("incidentctl.dsl.bad") for t in targets)
