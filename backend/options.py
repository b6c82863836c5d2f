"""Typed options, the one shape every extension point's configuration takes (a task suite, an engine, a verifier, a
search strategy): a pydantic model with `extra="forbid"` and fields that carry defaults, ranges and help. A
validation failure becomes one `SpecError` naming the field by its path in the spec, what was wrong and what is
allowed. The registries that hold the models are backend/registry.py."""

from __future__ import annotations

import re
import types
import typing
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.fields import FieldInfo
from pydantic.json_schema import JsonDict

from backend.errors import SpecError

OptionsT = TypeVar("OptionsT", bound=BaseModel)


class Options(BaseModel):
    """Base of every options model: unknown keys are errors, values are frozen once checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def explain(cls, error: dict, field: FieldInfo) -> tuple[str, str | None] | None:
        """(what was wrong, what is allowed) for a bad value of `field`, pydantic's error `error`; None: pydantic's
        own words. A kind whose errors read otherwise overrides it (strategies: backend/strategies/params.py)."""
        return None


class RuleError(SpecError):
    """A cross-field rule of an options model is broken (e.g. beam width must divide n). Raised from a model
    validator with `field` the option to blame; `validate_options` puts it under the options' path in the spec."""


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


def _field_at(model: type[BaseModel], loc: tuple) -> tuple[Any, FieldInfo | None]:
    """(the model holding it, the field) at `loc`, or (None, None)."""
    keys = tuple(p for p in loc if not isinstance(p, int) and not _is_tag(p))
    holder = _model_at(model, keys)
    return (holder, holder.model_fields.get(keys[-1])) if holder is not None and keys else (None, None)


def _description(model: type[BaseModel], loc: tuple) -> str | None:
    """The help of the field at `loc` (what a value there may be), for errors whose message does not say it."""
    fld = _field_at(model, loc)[1]
    return fld.description if fld is not None else None


def base_type(annotation: Any) -> Any:
    """The type a form widget or an error message speaks of: `int` for `Annotated[int, ...] | None`, the
    `Literal[...]` itself for a choice."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    base = args[0] if args and typing.get_origin(annotation) in (typing.Union, types.UnionType) else annotation
    return typing.get_args(base)[0] if typing.get_origin(base) is typing.Annotated else base


def allowed_values(fld: FieldInfo) -> str | None:
    """What a field allows, from its type and constraints: `'last', 'min'` for a choice, `int in [1, 4096]` for a
    bounded number, `any text` for a string; None where the help has to say it (a union, a list, a model)."""
    base = base_type(fld.annotation)
    if typing.get_origin(base) is typing.Literal:
        return ", ".join(repr(c) for c in typing.get_args(base))
    if base is str:
        return "any text"
    if base in (int, float):
        lo = next((getattr(m, k) for m in fld.metadata for k in ("ge", "gt") if getattr(m, k, None) is not None), None)
        hi = next((getattr(m, k) for m in fld.metadata for k in ("le", "lt") if getattr(m, k, None) is not None), None)
        return f"{base.__name__} in [{'-inf' if lo is None else f'{lo:g}'}, {'inf' if hi is None else f'{hi:g}'}]"
    return None


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


def options_error(
    err: ValidationError, model: type[BaseModel], prefix: str = "", unknown: str = "unknown key"
) -> SpecError:
    """One line for the first problem pydantic found (the one a user must fix first); `unknown` says what a key the
    model lacks is (`not a parameter of beam_search`)."""
    e = first_problem(err.errors())
    loc = tuple(e["loc"])
    field = field_path(loc, prefix)
    if e["type"] == "extra_forbidden":
        return SpecError(field, unknown, allowed_keys(model, loc))
    if e["type"] == "missing":
        return SpecError(field, "required but missing", _description(model, loc))
    holder, fld = _field_at(model, loc)
    explained = holder.explain(e, fld) if fld is not None and issubclass(holder, Options) else None
    if explained is not None:
        return SpecError(field, *explained)
    msg = str(e["msg"]).removeprefix("Value error, ")
    shown = "input" in e and not isinstance(e.get("input"), dict) and not field.endswith(WITHHELD)
    # a value of the wrong type: pydantic says which type, the field's help says what it is for
    allowed = _description(model, loc) if str(e["type"]).endswith(("_type", "_parsing")) else None
    return SpecError(field, f"{msg} (got {echoed(e.get('input'))})" if shown else msg, allowed)


def validate_options(model: type[OptionsT], data: Any, field: str, unknown: str = "unknown key") -> OptionsT:
    """`data` checked against an options model; a failure names `field`.<path>. A key the model lacks is reported
    before any other problem: a misspelt key leaves the value meant for it unchecked."""
    if isinstance(data, model):
        return data
    if not isinstance(data, dict):
        raise SpecError(
            field, f"must be a mapping of options, got {type(data).__name__}", ", ".join(model.model_fields)
        )
    stray = next((k for k in data if k not in model.model_fields), None)
    if stray is not None:
        raise SpecError(f"{field}.{stray}", unknown, ", ".join(model.model_fields) or "none")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise options_error(err, model, field, unknown) from None
    except RuleError as err:
        raise SpecError(f"{field}.{err.field}", err.problem, err.allowed) from None
