"""Serving what a compute-optimal study found: a policy frozen from the study (`policy.py`), the runtime that answers
one question the way the policy says (`runtime.py`), and an OpenAI-compatible HTTP front (`http.py`); what it served, read back with its labels (`log.py`)."""

SERVED = "served"
"""Name of a served request's run (the catalog's `runs.name`), and the dataset of its question."""
