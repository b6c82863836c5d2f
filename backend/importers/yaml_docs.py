"""A YAML file's documents, one at a time, as `yaml.safe_load_all` gives them, built from libyaml's event stream.

Why not `yaml.load_all(f, Loader=CSafeLoader)`: libyaml parses in C, but its composer then calls PyYAML's Python
resolver and constructor once per scalar; on a Large Language Monkeys problem file (two 10,000-item lists) that is
most of the time, about five times the parse itself (bench/import.py). Here the events are turned into
Python values directly: a quoted or block scalar is its text; a plain one is resolved by PyYAML's own resolver
and built by its own SafeConstructor (memoised for short values such as `true`), so the values are SafeLoader's.
What this does not build (anchors and aliases, explicit tags on collections, merge keys, complex keys) sends the
file back to `yaml.load_all`, which then skips the documents already given."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

STR = "tag:yaml.org,2002:str"
SCALAR_TAGS = frozenset(
    f"tag:yaml.org,2002:{t}" for t in ("str", "null", "bool", "int", "float", "binary", "timestamp")
)
_MEMO_LEN = 16  # plain scalars up to this long are resolved once per file (verdicts, numbers, nulls)
_NO_KEY = object()  # an open mapping waits for its next key


class _Unsupported(Exception):
    """A construct this builder leaves to PyYAML's loader."""


def loader():
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def documents(path) -> Iterator[Any]:
    """Each document of the YAML file at `path`, as `yaml.safe_load_all` gives it (a yaml.YAMLError on bad YAML)."""
    given = 0
    with open(path, encoding="utf-8") as f:
        try:
            for doc in _built(f):
                given += 1
                yield doc
            return
        except _Unsupported:
            pass
    with open(path, encoding="utf-8") as f:
        for n, doc in enumerate(yaml.load_all(f, Loader=loader())):
            if n >= given:
                yield doc


def _built(f: IO[str]) -> Iterator[Any]:
    resolver, constructor = Resolver(), SafeConstructor()
    memo: dict[tuple[str, str | None], Any] = {}

    def scalar(ev: ScalarEvent) -> Any:
        if ev.anchor is not None:
            raise _Unsupported
        value = ev.value
        if ev.tag is None and not ev.implicit[0]:  # quoted or block: a string
            return value
        key = (value, ev.tag)
        if len(value) <= _MEMO_LEN and key in memo:
            return memo[key]
        tag = resolver.resolve(ScalarNode, value, (True, False)) if ev.tag is None else ev.tag
        if tag == STR:
            out: Any = value
        elif tag in SCALAR_TAGS:
            out = constructor.yaml_constructors[tag](constructor, ScalarNode(tag, value, style=ev.style))
        else:  # a merge key, `=`, or a tag SafeLoader may refuse: its loader decides
            raise _Unsupported
        if len(value) <= _MEMO_LEN:
            memo[key] = out
        return out

    stack: list[Any] = []  # the open collections, innermost last
    keys: list[Any] = []  # per open mapping, its key waiting for a value (_NO_KEY when none)
    root: Any = None

    def add(value: Any) -> None:
        nonlocal root
        if not stack:
            root = value
            return
        top = stack[-1]
        if type(top) is list:
            top.append(value)
        elif keys[-1] is _NO_KEY:
            if isinstance(value, (list, dict)):
                raise _Unsupported  # a complex key
            keys[-1] = value
        else:
            top[keys[-1]] = value
            keys[-1] = _NO_KEY

    for ev in yaml.parse(f, Loader=loader()):
        kind = type(ev)
        if kind is ScalarEvent:
            add(scalar(ev))
        elif kind is SequenceStartEvent or kind is MappingStartEvent:
            if ev.anchor is not None or not ev.implicit:
                raise _Unsupported
            stack.append([] if kind is SequenceStartEvent else {})
            keys.append(_NO_KEY)
        elif kind is SequenceEndEvent or kind is MappingEndEvent:
            done = stack.pop()
            keys.pop()
            add(done)
        elif kind is DocumentStartEvent:
            root = None
        elif kind is DocumentEndEvent:
            yield root
        elif kind is AliasEvent:
            raise _Unsupported
