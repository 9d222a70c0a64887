"""The wheel as a user installs it: built, installed non-editable in a fresh venv, run away from the source tree."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*command: str | Path, cwd: Path, timeout: float = 600, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env)
    assert done.returncode == 0, f"{command}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--disable-pip-version-check", "-w", out, ROOT,
        cwd=out)
    (built,) = out.glob("incidentctl-*.whl")
    return built


def test_the_wheel_carries_every_module_schema_and_runbook(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = [p.relative_to(ROOT).as_posix() for package in ("incidentctl", "workflows", "activities")
               for p in (ROOT / package).rglob("*.py")]
    missing = [s for s in sources if s not in names]
    assert missing == [], "add their packages to pyproject.toml [tool.setuptools] packages"
    assert "worker.py" in names
    for directory, pattern in (("schemas", "*.json"), ("runbooks", "*.yaml")):
        for path in (ROOT / directory).glob(pattern):
            assert f"incidentctl/{directory}/{path.name}" in names


def test_installed_wheel_validates_and_runs_the_demo_without_the_source_tree(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel, cwd=tmp_path, timeout=900)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INCIDENTCTL_", "PYTHONPATH"))}
    located = run(python, "-c", "import incidentctl, workflows; print(incidentctl.__file__, workflows.__file__)",
                  cwd=elsewhere, env=env).stdout
    assert str(ROOT) not in located and str(venv) in located, "the installed copy is the one imported"
    validated = run(venv / "bin" / "incidentctl", "runbook", "validate", cwd=elsewhere, env=env).stdout
    assert "ok  " in validated and "k8s-pod-crashlooping" in validated
    demo = run(venv / "bin" / "incidentctl", "demo", cwd=elsewhere, env=env, timeout=600).stdout
    assert "demo incident finished: closed" in demo
