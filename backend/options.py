"""Typed options, the one shape every extension point's configuration takes (a task suite, an engine, a verifier):
a pydantic model with `extra="forbid"` and fields that carry defaults, ranges and help. A validation failure
becomes one `SpecError` naming the field by its path in the spec, what was wrong and what is allowed."""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.json_schema import JsonDict

from backend.errors import SpecError, require

OptionsT = TypeVar("OptionsT", bound=BaseModel)


class Options(BaseModel):
    """Base of every options model: unknown keys are errors, values are frozen once checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class KindOptions(Options):
    """Options of an extension chosen by `kind` in a spec (a task suite, an engine): each subclass pins `kind` to its
    registry name with `kind: Literal["<name>"] = "<name>"`."""

    kind: str


EXECUTION: JsonDict = {"execution": True}  # Field(json_schema_extra=EXECUTION): how a run goes, not what it makes


def identity(options: BaseModel) -> dict:
    """The options that decide a run's results: every field but those marked EXECUTION (parallelism, timeouts,
    memory), so that changing how a run executes resumes it instead of starting another."""
    fields = type(options).model_fields
    return {k: v for k, v in options.model_dump(mode="json").items() if fields[k].json_schema_extra != EXECUTION}


_BRANCH_TAGS = ("str", "int", "ModelSpec", "VerifierSpec")


def _is_tag(part) -> bool:
    return isinstance(part, str) and (
        part in _BRANCH_TAGS or part.startswith(("function-", "constrained-", "literal["))
    )


def field_path(loc: tuple, prefix: str = "") -> str:
    """`task.datasets[0].size` from pydantic's location tuple (union-branch tags dropped: noise to a user)."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _is_tag(part):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or "spec"


def _model_at(model: type[BaseModel], loc: tuple) -> Any:
    """The options model that holds the last key of `loc` (walking nested models and lists), or None."""
    cur: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or _is_tag(part) or cur is None:
            continue
        fld = cur.model_fields.get(part) if isinstance(cur, type) and issubclass(cur, BaseModel) else None
        if fld is None:
            return None
        cur = _first_model(fld.annotation)
    return cur if isinstance(cur, type) and issubclass(cur, BaseModel) else None


def allowed_keys(model: type[BaseModel], loc: tuple) -> str | None:
    """The keys allowed where an unknown one appeared: walk the models along `loc`."""
    holder = _model_at(model, loc)
    return None if holder is None else ", ".join(holder.model_fields) or "none"


def _description(model: type[BaseModel], loc: tuple) -> str | None:
    """The help of the field at `loc` (what a value there may be), for errors whose message does not say it."""
    keys = tuple(p for p in loc if not isinstance(p, int) and not _is_tag(p))
    holder = _model_at(model, keys)
    fld = holder.model_fields.get(keys[-1]) if holder is not None and keys else None
    return fld.description if fld is not None else None


def _first_model(ann) -> Any:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in getattr(ann, "__args__", ()) or ():
        found = _first_model(arg)
        if found is not None:
            return found
    return None


# Options whose bad value an error never repeats: a user who pastes a secret where its variable's name goes must not
# see it echoed into logs, the catalog and the dashboard.
WITHHELD = ("api_key_env",)


def echoed(value: Any) -> str:
    """A bad value as an error repeats it, less what may be a credential: a URL's `user:password@` and its query."""
    text = repr(value)
    if isinstance(value, str) and "://" in value:
        text = re.sub(r"(?<=://)[^/\s]*@", "***@", text)
        text = re.sub(r"[?#][^'\"]*", "?***", text)
    return text


def first_problem(errors: list) -> dict:
    """The problem a user must fix first: pydantic's first, except that of a union's branches the one that got
    furthest into the value wins (a model's mapping with a bad price says so, not "should be a valid string"), and
    an unknown key beats a required one missing beside it (a misspelt key causes both)."""
    first = errors[0]
    where = field_path(tuple(first["loc"]))
    inside = [
        e
        for e in errors
        if field_path(tuple(e["loc"])) == where or field_path(tuple(e["loc"])).startswith((where + ".", where + "["))
    ]
    chosen = max(inside, key=lambda e: len(field_path(tuple(e["loc"]))))  # the first of the deepest
    if chosen["type"] == "missing":
        parent = field_path(tuple(chosen["loc"])[:-1])
        chosen = next(
            (e for e in errors if e["type"] == "extra_forbidden" and field_path(tuple(e["loc"])[:-1]) == parent),
            chosen,
        )
    return chosen


def options_error(err: ValidationError, model: type[BaseModel], prefix: str = "") -> SpecError:
    """One line for the first problem pydantic found (the one a user must fix first)."""
    e = first_problem(err.errors())
    loc = tuple(e["loc"])
    field = field_path(loc, prefix)
    if e["type"] == "extra_forbidden":
        return SpecError(field, "unknown key", allowed_keys(model, loc))
    if e["type"] == "missing":
        return SpecError(field, "required but missing", _description(model, loc))
    msg = str(e["msg"]).removeprefix("Value error, ")
    shown = "input" in e and not isinstance(e.get("input"), dict) and not field.endswith(WITHHELD)
    # a value of the wrong type: pydantic says which type, the field's help says what it is for
    allowed = _description(model, loc) if str(e["type"]).endswith(("_type", "_parsing")) else None
    return SpecError(field, f"{msg} (got {echoed(e.get('input'))})" if shown else msg, allowed)


def validate_options(model: type[OptionsT], data: Any, field: str) -> OptionsT:
    """`data` checked against an options model; a failure names `field`.<path>."""
    if isinstance(data, model):
        return data
    if not isinstance(data, dict):
        raise SpecError(
            field, f"must be a mapping of options, got {type(data).__name__}", ", ".join(model.model_fields)
        )
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise options_error(err, model, field) from None


def register_kind(registry: dict, entry: Any, what: str) -> Any:
    """Add an entry chosen by `kind` (a task suite, an engine) to its registry: the one place that checks its options
    pin the kind, so a spec's `kind:` and the registry name cannot drift apart."""
    kind_field = entry.options.model_fields.get("kind")
    if kind_field is None or kind_field.default != entry.kind:
        raise ValueError(f"{what} {entry.kind!r}: its options need `kind: Literal[{entry.kind!r}] = {entry.kind!r}`")
    registry[entry.kind] = entry
    return entry


def kind_options(registry: dict[str, Any], data: Any, field: str, what: str, default: str | None = None) -> KindOptions:
    """A spec's `{kind: ..., <options>}` mapping checked against that kind's options model (no kind: `default`)."""
    if isinstance(data, KindOptions) and data.kind in registry:
        return data
    if not isinstance(data, dict):
        raise SpecError(
            field,
            f"must be a mapping of options, got {type(data).__name__}",
            f"kind ({', '.join(registry)}) and its options",
        )
    kind = data.get("kind", default)
    if kind is None:
        raise SpecError(f"{field}.kind", "required but missing", ", ".join(registry))
    entry = require(registry, kind, field=f"{field}.kind", kind=what)
    return validate_options(entry.options, data, field)
