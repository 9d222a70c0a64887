"""How fast runbooks compile, and how fast `incidentctl runbook validate` answers for the shipped set.

1. In one process: compile N runbooks (copies of the shipped ones under other names) through the service's
   runbook library, against the floor of only parsing the same files with libyaml. Target: 200 in < 1 s.
2. As a user runs it: the `incidentctl runbook validate runbooks/` process, against a bare `python -c pass`
   of the same interpreter (the floor every command pays). Target: < 0.5 s.

    .venv/bin/python bench/compile_runbooks.py [--runbooks 200] [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from incidentctl.library import compile_directory, installed_actions  # noqa: E402


def make_runbooks(directory: Path, count: int) -> None:
    shipped = sorted((ROOT / "runbooks").glob("*.yaml"))
    for i in range(count):
        source = shipped[i % len(shipped)]
        text = source.read_text()
        name = yaml.safe_load(text)["name"]
        (directory / f"{i:04d}-{source.name}").write_text(text.replace(f"name: {name}\n", f"name: {name}-{i}\n", 1))


def timed(fn: object, runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def compile_in_process(count: int, runs: int) -> None:
    installed_actions()  # the catalog is built once per process; counted in the command figures below
    with tempfile.TemporaryDirectory() as workdir:
        directory = Path(workdir)
        make_runbooks(directory, count)
        files = sorted(directory.glob("*.yaml"))

        def compile_all() -> None:
            plans, errors = compile_directory([directory])
            assert len(plans) == count and not errors, errors[:3]

        def parse_only() -> None:
            for file in files:
                yaml.load(file.read_text(), Loader=yaml.CSafeLoader)

        compile_s, parse_s = timed(compile_all, runs), timed(parse_only, runs)
    print(f"compile {count} runbooks in one process: {compile_s:.3f} s (median of {runs}; "
          f"{compile_s / count * 1000:.2f} ms each)")
    print(f"  floor, libyaml parse of the same files: {parse_s:.3f} s; compile/parse x{compile_s / parse_s:.1f}")


def command_seconds(command: list[str], runs: int) -> float:
    subprocess.run(command, cwd=ROOT, capture_output=True, check=True)  # warm the page cache
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(command, cwd=ROOT, capture_output=True, check=True)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def validate_command(runs: int) -> None:
    cli = str(Path(sys.executable).parent / "incidentctl")
    validate = command_seconds([cli, "runbook", "validate", "runbooks/"], runs)
    bare = command_seconds([sys.executable, "-c", "pass"], runs)
    print(f"`incidentctl runbook validate runbooks/` (shipped set): {validate:.3f} s wall (median of {runs})")
    print(f"  floor, `python -c pass`: {bare:.3f} s; validate - floor = {validate - bare:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runbooks", type=int, default=200)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    compile_in_process(args.runbooks, args.runs)
    validate_command(args.runs)


if __name__ == "__main__":
    main()
