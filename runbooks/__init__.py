"""The shipped runbooks, package data `incidentctl.runbooks` (see incidentctl/dsl/resources.py)."""
