"""A small local fake of the GKE REST API (container.googleapis.com v1): the paths incidentctl's gke actions call."""
