"""Stakeholder notifications: `notify.<channel>`, one module per channel."""
