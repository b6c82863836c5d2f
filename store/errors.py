"""The store's typed errors. They live in the lowest layer so that store/ imports nothing of backend/;
`backend.errors` re-exports them, and the CLI and the dashboard render every `TtcError` in one place each."""

from __future__ import annotations


class TtcError(Exception):
    """Base class of every user-facing failure; `str(err)` is the one-line message shown to the user."""

    exit_code = 2


class StoreError(TtcError):
    """The store directory cannot be used (unwritable, not a ttc store, bad query)."""
