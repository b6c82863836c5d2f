"""README tables derived from the registries: task suites, engines, strategies (with their parameters) and
verifiers (with their options and needs). `python -m backend.docs` rewrites the README between the `<!-- registry:NAME -->` markers; a test
fails when the README is behind the registries, so a new strategy or verifier cannot go undocumented."""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", "\\n")


def strategies_table() -> str:
    from backend.strategies import STRATEGIES

    rows = ["| strategy | what it does | parameters (default) | verifier |", "|---|---|---|---|"]
    for name, e in STRATEGIES.items():
        sweep = " Takes a sequential:parallel `ratios` sweep." if e.takes_ratios else ""
        rows.append(
            f"| `{name}` | {_cell(e.help)}{sweep} | {_options(e.options)} | {'needed' if e.needs_verifier else 'optional'} |"
        )
    return "\n".join(rows)


def verifiers_table() -> str:
    from backend.verifiers import VERIFIERS

    rows = ["| verifier | what it is | options | needs |", "|---|---|---|---|"]
    for name, e in VERIFIERS.items():
        opts = _options(e.options)
        needs = e.needs()
        rows.append(f"| `{name}` | {_cell(e.help)} | {opts} | {', '.join(needs) or '—'} |")
    return "\n".join(rows)


def tasks_table() -> str:
    from backend.tasks import TASKS

    rows = ["| kind | questions | options | grading |", "|---|---|---|---|"]
    for kind, e in TASKS.items():
        rows.append(f"| `{kind}` | {_cell(e.help)} | {_options(e.options)} | {_cell(e.grading) or '—'} |")
    return "\n".join(rows)


def engines_table() -> str:
    from backend.engines import DEFAULT_ENGINE, ENGINES

    rows = ["| kind | what it runs | options | can |", "|---|---|---|---|"]
    for kind, e in ENGINES.items():
        can = e.abilities() + (["needs a GPU"] if e.needs_gpu else [])
        name = f"`{kind}`" + (" (default)" if kind == DEFAULT_ENGINE else "")
        rows.append(f"| {name} | {_cell(e.help)} | {_options(e.options)} | {', '.join(can)} |")
    return "\n".join(rows)


def _options(model) -> str:
    shown = [
        f"`{o}`" + (" (required)" if f.is_required() else f"={_cell(repr(f.default))}")
        for o, f in model.model_fields.items()
        if o != "kind"
    ]
    return ", ".join(shown) or "—"


TABLES = {"tasks": tasks_table, "engines": engines_table, "strategies": strategies_table, "verifiers": verifiers_table}


def _section(body: str):
    return lambda m: m.group(1) + body + "\n" + m.group(2)


def render(text: str) -> str:
    """`text` with every registry section replaced by the current table."""
    for name, table in TABLES.items():
        pattern = re.compile(rf"(<!-- registry:{name} -->\n)(?:.*?\n)?(<!-- /registry:{name} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"README has no <!-- registry:{name} --> ... <!-- /registry:{name} --> section")
        text = pattern.sub(_section(table()), text)
    return text


def main() -> int:
    README.write_text(render(README.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"rewrote the registry tables in {README}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
