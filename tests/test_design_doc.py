"""docs/design.md describes the plan the code builds: its JSON blocks name exactly the dataclasses' keys."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from incidentctl.dsl import plan as plan_types
from incidentctl.dsl.plan import Plan, Step

DESIGN = Path(__file__).resolve().parents[1] / "docs" / "design.md"


def json_keys(cls: type) -> set[str]:
    return {f.metadata.get("json", f.name) for f in dataclasses.fields(cls)}


def plan_blocks() -> list[dict]:
    section = DESIGN.read_text().split("## Compiled plan", 1)[1].split("\n## ", 1)[0]
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", section, re.S)]


def test_the_documented_plan_has_exactly_the_keys_of_the_types() -> None:
    plan_block, step_block, records = plan_blocks()
    assert set(plan_block) == json_keys(Plan)
    assert set(step_block) == json_keys(Step)
    nested = {name: cls for name, cls in vars(plan_types).items()
              if dataclasses.is_dataclass(cls) and cls not in (Plan, Step, plan_types.Source)}
    assert set(records) == set(nested), "document every record type of the plan"
    for name, cls in nested.items():
        assert set(records[name]) == json_keys(cls), name
