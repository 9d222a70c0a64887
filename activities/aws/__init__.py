"""The `aws.*` actions: AWS through boto3 (standard credential chain, per-step region, optional role to assume).

Helpers: `schemas.py` (the params every action takes, lease templates), `api.py` (clients, one call with retries
and error mapping, dry runs, waiters with heartbeats), `faults.py` (what an AWS error means, pure), `iam.py` (the
IAM actions each action needs, and the least-privilege policy built from them). One module per action.
"""
