"""The world the fake starts with: one project, one regional cluster, two node pools.

`web` sits at its autoscaling maximum (3 nodes per zone, max 3): the node pool exhausted incident. `batch`
carries a failed upgrade (RUNNING_WITH_ERROR, previous version known): what a rollback is for.
"""

from __future__ import annotations

import base64

from incidentctl.gkesim.world import Autoscaling, Cluster, NodePool, World

PROJECT = "acme-prod"
LOCATION = "europe-west1"
CLUSTER = "shop"
# How long an operation takes to finish, unless told (GKE: minutes), and the token POST /token hands out.
DEFAULT_OPERATION_S = 2.0
DEFAULT_ACCESS_TOKEN = "gkesim-token"
OLD_VERSION = "1.30.5-gke.1014001"
NEW_VERSION = "1.31.1-gke.1146000"
# Not a usable certificate: what the fake hands out where GKE gives the cluster's CA.
FAKE_CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nZmFrZQ==\n-----END CERTIFICATE-----\n").decode()


def build(operation_s: float) -> World:
    world = World(operation_s=operation_s)
    world.add(Cluster(PROJECT, LOCATION, CLUSTER, master_version=NEW_VERSION, endpoint="10.0.0.2",
                      ca_certificate=FAKE_CA, pools={
                          "web": NodePool("web", 3, [f"{LOCATION}-b"], OLD_VERSION,
                                          Autoscaling(enabled=True, min_node_count=1, max_node_count=3)),
                          "batch": NodePool("batch", 2, [f"{LOCATION}-b", f"{LOCATION}-c"], NEW_VERSION,
                                            status="RUNNING_WITH_ERROR",
                                            status_message="Node pool upgrade failed: surge node not ready",
                                            previous_version=OLD_VERSION),
                      }))
    return world
