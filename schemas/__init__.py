"""The JSON Schemas, shipped as package data `incidentctl.schemas` (see incidentctl/dsl/resources.py)."""
