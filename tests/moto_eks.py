"""moto's server whose EKS clusters have the endpoint a test gives (MOTO_EKS_ENDPOINT).

moto makes up an endpoint (`https://<random>.<random>.<region>.eks.amazonaws.com/`), so a client built from
DescribeCluster reaches nothing. This launcher sets moto's own endpoint template before its server starts, so
DescribeCluster names the test's simulated Kubernetes API. (moto's CA is random text; the simulator is plain HTTP
on 127.0.0.1, so it is not used.) Run as `python -m tests.moto_eks -H 127.0.0.1 -p PORT` (the `command` of
tests.aws_moto.start_moto).
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    from moto.eks import models
    from moto.server import main as moto_server

    models.ENDPOINT_TEMPLATE = os.environ["MOTO_EKS_ENDPOINT"]
    moto_server(sys.argv[1:])


if __name__ == "__main__":
    main()
