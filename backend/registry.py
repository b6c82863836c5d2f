"""One registry shape for every kind of extension: engines, task suites, verifiers and search strategies.

An entry is a name, one line of help, a typed options model (backend/options.py: what a spec may set, with defaults,
ranges and help), a factory, and the capability flags of its kind (an engine's logprobs, a verifier's need of ground
truth, a strategy's need of a verifier). Built-ins register exactly as a plug-in would, one `register` call each; a
name registered twice is refused. The spec check, the CLI listings, README's tables (backend/docs.py) and the Run
form (app_pages/_options_form.py) all read the registries, so a new entry appears in each with no other change.

A spec picks an engine or a task suite by `kind:` inside its options mapping (`engine: {kind: vllm, ...}`), and a
verifier or a strategy by `name:` beside them; `kind_options` and `options` check either form."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from backend.errors import SpecError, require
from backend.options import KindOptions, Options, validate_options


@dataclass(frozen=True)
class Entry:
    """What every registered extension declares; each kind's entry adds its capability flags."""

    name: str
    help: str
    options: type[Options]
    factory: Callable[..., Any]


EntryT = TypeVar("EntryT", bound=Entry)


class Registry(Mapping[str, EntryT], Generic[EntryT]):
    """The entries of one kind by name, in registration order (listings and tables keep it).

    `what` names the kind in errors (`unknown engine 'tgi'`); `unknown` says what a key its options lack is
    (`{name}`: the entry's name); `by_kind`: entries are chosen by a `kind:` their options pin."""

    def __init__(self, what: str, *, unknown: str = "unknown key", by_kind: bool = False):
        self.what, self.unknown, self.by_kind = what, unknown, by_kind
        self._entries: dict[str, EntryT] = {}

    def __getitem__(self, name: str) -> EntryT:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def register(self, entry: EntryT) -> EntryT:
        """Add an entry; a name taken already is refused, and an entry chosen by kind must pin its kind in its
        options (`kind: Literal["<name>"] = "<name>"`), so a spec's `kind:` and the registry name cannot drift."""
        if entry.name in self._entries:
            raise ValueError(f"{self.what} {entry.name!r} is registered already")
        if self.by_kind:
            kind_field = entry.options.model_fields.get("kind")
            if kind_field is None or kind_field.default != entry.name:
                raise ValueError(
                    f"{self.what} {entry.name!r}: its options need `kind: Literal[{entry.name!r}] = {entry.name!r}`"
                )
        self._entries[entry.name] = entry
        return entry

    def unregister(self, name: str) -> EntryT:
        """Remove an entry (a plug-in unloaded, a test's toy gone)."""
        return self._entries.pop(name)

    def lookup(self, name: str, field: str) -> EntryT:
        """The entry `name`; an unknown one fails naming `field` and the known names."""
        return require(self, name, field=field, kind=self.what)

    def options(self, name: str, data: Any, field: str, name_field: str | None = None) -> Options:
        """`data` checked against entry `name`'s options model; a failure names `field`.<option>, an unknown name
        `name_field` (default: `field`)."""
        entry = self.lookup(name, name_field or field)
        return validate_options(entry.options, data, field, self.unknown.format(name=name))

    def kind_options(self, data: Any, field: str, default: str | None = None) -> KindOptions:
        """A spec's `{kind: ..., <options>}` mapping checked against that kind's options model (no kind: `default`)."""
        if isinstance(data, KindOptions) and data.kind in self:
            return data
        if not isinstance(data, dict):
            raise SpecError(
                field,
                f"must be a mapping of options, got {type(data).__name__}",
                f"kind ({', '.join(self)}) and its options",
            )
        kind = data.get("kind", default)
        if kind is None:
            raise SpecError(f"{field}.kind", "required but missing", ", ".join(self))
        options = self.options(kind, data, field, f"{field}.kind")
        assert isinstance(options, KindOptions), f"{self.what} {kind!r}: its options are not KindOptions"
        return options
