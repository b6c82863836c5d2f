"""Serving what a compute-optimal study found: a policy frozen from the study (`policy.py`), the runtime that answers
one question the way the policy says (`runtime.py`), an OpenAI-compatible HTTP front (`http.py`), and what it
served read back with the labels a user gives its answers (`log.py`)."""
