"""Controls generated from an extension's typed options (backend/options.py): a task suite, an engine or a
verifier registered with an options model appears in the Run form without a page change. Values are checked by the
same `validate_options` a YAML spec goes through, so the form and a spec fail the same way."""

from __future__ import annotations

import json
import types
import typing
from typing import Any

import streamlit as st
from pydantic import BaseModel

from app_pages import _page as frame
from backend.errors import SpecError, TtcError
from backend.options import validate_options


def _widget(key: str, name: str, f) -> Any:
    """One widget for one field; returns its value, or _UNSET to leave the field to its default."""
    ann = f.annotation
    args = [a for a in typing.get_args(ann) if a is not type(None)]
    base = args[0] if args and typing.get_origin(ann) in (typing.Union, types.UnionType) else ann
    if typing.get_origin(base) is typing.Annotated:  # a constrained number, e.g. `Annotated[int, Field(ge=1)] | "auto"`
        base = typing.get_args(base)[0]
    label = name
    helptext = f.description or None
    default = None if f.is_required() else f.default
    if typing.get_origin(base) is typing.Literal:
        choices = list(typing.get_args(base))
        return st.selectbox(
            label, choices, index=choices.index(default) if default in choices else 0, key=key, help=helptext
        )
    if base is bool:
        return st.checkbox(label, value=bool(default), key=key, help=helptext)
    if base in (int, float):
        raw = st.text_input(label, value="" if default is None else str(default), key=key, help=helptext)
        if not raw.strip():
            return _UNSET
        try:
            return base(raw)
        except ValueError:
            return raw  # validate_options names the field and what is allowed
    if base is str:
        raw = st.text_input(label, value="" if default is None else str(default), key=key, help=helptext)
        return raw if raw or f.is_required() else _UNSET
    raw = st.text_input(label + " (JSON)", value="" if default is None else json.dumps(default), key=key, help=helptext)
    if not raw.strip():
        return _UNSET
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


_UNSET = object()


def options_controls(model: type[BaseModel], key: str, field: str, problems: list, fixed: dict | None = None) -> dict:
    """One widget per option of `model` (besides those in `fixed`, e.g. its kind), checked against the model.
    Returns the options as a spec mapping; a bad value is shown under the form and blocks queueing."""
    fixed = dict(fixed or {})
    values: dict[str, Any] = {}
    names = [n for n in model.model_fields if n not in fixed]
    cols = st.columns(max(1, min(3, len(names)))) if names else []
    for i, name in enumerate(names):
        with cols[i % len(cols)]:
            v = _widget(f"{key}_{name}", name, model.model_fields[name])
        if v is not _UNSET:
            values[name] = v
    data = {**fixed, **values}
    try:
        validate_options(model, data, field)
    except (SpecError, TtcError) as e:
        frame.render_error(e)
        problems.append(e)
    return data
