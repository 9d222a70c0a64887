"""Write deploy/aws/iam-policy.json: the least-privilege IAM policy the aws actions declare (activities/aws/iam.py).

Run after adding or changing an aws action: `.venv/bin/python scripts/aws_iam_policy.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POLICY_FILE = ROOT / "deploy" / "aws" / "iam-policy.json"

if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    from activities.aws.iam import policy_json

    POLICY_FILE.write_text(policy_json())
    print(f"wrote {POLICY_FILE.relative_to(ROOT)}")
