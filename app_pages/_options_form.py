"""Controls generated from an extension's typed options (backend/options.py): a task suite, an engine, a verifier or
a search strategy registered with an options model (backend/registry.py) appears in the Run form without a page
change. Values are checked by the same `validate_options` a YAML spec goes through, so the form and a spec fail the
same way."""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Mapping
from typing import Any

import streamlit as st
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from app_pages import _page as frame
from backend.errors import SpecError, TtcError
from backend.options import allowed_values, base_type, validate_options

_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_UNESCAPES = {v: k for k, v in _ESCAPES.items()}


def shown_text(text: str) -> str:
    """A text option as a one-line input shows it: a step delimiter's blank line as `\\n\\n`."""
    return "".join(_ESCAPES.get(c, c) for c in text)


def typed_text(raw: str) -> str:
    """The text an input means: `\\n` is a newline, `\\\\` a backslash (other characters as typed)."""
    return re.sub(r"\\[\\ntr]", lambda m: _UNESCAPES[m.group(0)], raw)


def _widget(key: str, name: str, f) -> Any:
    """One widget for one field; returns its value, or _UNSET to leave the field to its default."""
    base = base_type(f.annotation)  # a constrained number, e.g. `Annotated[int, Field(ge=1)] | "auto"`: int
    label = name
    allowed = allowed_values(f) if base in (int, float) else None  # a number's range; a choice shows its own
    helptext = " ".join(filter(None, (f.description, f"({allowed})" if allowed else None))) or None
    default = None if f.is_required() else f.get_default(call_default_factory=True)  # a list/dict field's factory
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
        raw = st.text_input(label, value="" if default is None else shown_text(str(default)), key=key, help=helptext)
        return typed_text(raw) if raw or f.is_required() else _UNSET
    shown = "" if default is None else json.dumps(to_jsonable_python(default))  # a nested options model too
    raw = st.text_input(label + " (JSON)", value=shown, key=key, help=helptext)
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


def strategy_controls(table: Mapping[str, Any], problems: list) -> list[dict]:
    """A multiselect of the registered strategies (`table`: backend.strategies.STRATEGIES) and, per chosen one, its
    options' controls. Returns [{"name": ..., "config": {...}}] with the defaults filled in, as a search stores its
    configuration; a strategy with a bad value is left out and its problem shown."""
    from backend.strategies import validate_config

    chosen = st.multiselect(
        "Search strategies", list(table), key="strategies", help="From backend.strategies.STRATEGIES"
    )
    out = []
    for name in chosen:
        entry = table[name]
        with st.expander(f"{name} parameters", expanded=True):
            st.caption(entry.help)
            found = len(problems)
            config = options_controls(entry.options, f"strat_{name}", "strategy", problems)
            spec: dict[str, Any] = {"name": name}
            if entry.takes_ratios:
                raw = st.text_input(
                    "sequential:parallel sweep",
                    value="",
                    key=f"strat_{name}_ratios",
                    help="e.g. 1:0, 1:1, 0:1 — at each budget one search per ratio, the budget's attempts split into "
                    "chain length × chains (Snell §6); empty: the chains and chain_length above",
                )
                ratios = [r.strip() for r in raw.split(",") if r.strip()]
                if ratios:
                    spec["ratios"] = ratios
            if len(problems) == found:
                out.append({**spec, "config": validate_config(name, config)})
    return out
