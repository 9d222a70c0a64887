"""GKE actions (google-cloud-container's ClusterManagerClient, REST transport)."""
