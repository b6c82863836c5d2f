"""Typed errors: every user-facing failure is a `TtcError` with one line that names the field, what was wrong
and what is allowed. The CLI and the dashboard render them in one place each (`backend.cli.main`,
`app_pages/_page.render_error`); nothing else prints tracebacks at a user."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from store.errors import StoreError, TtcError  # defined in the lowest layer, which imports nothing of backend/


class SpecError(TtcError):
    """A field of a run spec (or any config) is invalid."""

    def __init__(self, field: str, problem: str, allowed: str | None = None):
        self.field, self.problem, self.allowed = field, problem, allowed
        msg = f"{field}: {problem}"
        if allowed:
            msg += f"; allowed: {allowed}"
        super().__init__(msg)


class UnknownNameError(SpecError):
    """A name looked up in a registry does not exist; lists the known ones."""

    def __init__(self, field: str, kind: str, name: str, known: Iterable[str], extra: str | None = None):
        known_list = ", ".join(sorted(known))
        allowed = known_list + (f", or {extra}" if extra else "")
        super().__init__(field, f"unknown {kind} {name!r}", allowed)
        self.name = name


class ModelFileError(TtcError):
    """A GGUF file is missing, corrupt, truncated or fails its checksum."""


class EngineError(TtcError):
    """The inference engine failed to load or to generate."""


class TaskError(TtcError):
    """A task suite could not be loaded (bad file, bad line, unknown dataset)."""


class WorkerError(TtcError):
    """A worker cannot be found, stopped or started (`ttc worker status|stop`, the dashboard's automatic start)."""


class ImportFileError(TtcError):
    """A file given to `ttc import` is not what its format says (truncated, a missing column, lists of unequal
    length, a correctness that is not a boolean): one line naming the file, the record and the field."""

    def __init__(self, path: object, record: object, field: str, problem: str, allowed: str | None = None):
        self.path, self.record, self.field, self.problem = str(path), record, field, problem
        msg = f"{path}: record {record}: {field}: {problem}"
        if allowed:
            msg += f"; allowed: {allowed}"
        super().__init__(msg)


class AdaptiveRunError(TtcError):
    """An analysis that averages random k-subsets of a pool was asked to pool an adaptive run's samples."""

    def __init__(self, run_ids: Iterable[str]):
        self.run_ids = sorted(run_ids)
        shown = ", ".join(self.run_ids)
        super().__init__(
            f"run {shown} is adaptive: its samples were drawn with optional stopping (a question stops once its votes "
            "agree), so they are not exchangeable and coverage, selection and compute-optimal curves over random "
            "k-subsets would be biased; read its result on the Run page (adaptive allocation), or leave it out of "
            "the selection"
        )


__all__ = [
    "AdaptiveRunError",
    "EngineError",
    "ModelFileError",
    "SpecError",
    "StoreError",
    "TaskError",
    "TtcError",
    "UnknownNameError",
    "WorkerError",
    "require",
]


def require(registry: Mapping, name: str, *, field: str, kind: str, extra: str | None = None):
    """Registry lookup that fails with `UnknownNameError` instead of a bare KeyError."""
    try:
        return registry[name]
    except KeyError:
        raise UnknownNameError(field, kind, name, registry.keys(), extra) from None
