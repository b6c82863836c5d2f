"""The README and the CLI listings are derived from the registries: a registered strategy, verifier, task kind or
shipped model that either of them misses fails here (datasette's test_docs idea)."""

from backend.cli import main
from backend.docs import README, render
from backend.models.registry import SHIPPED_MODELS
from backend.strategies import STRATEGIES
from backend.tasks import TASKS
from backend.verifiers import VERIFIERS


def test_readme_registry_tables_are_current():
    text = README.read_text(encoding="utf-8")
    assert render(text) == text, "README is behind the registries: run `python -m backend.docs`"


def test_readme_names_every_registered_extension():
    text = README.read_text(encoding="utf-8")
    for kind, names in (("strategy", STRATEGIES), ("verifier", VERIFIERS), ("task", TASKS), ("model", SHIPPED_MODELS)):
        missing = [n for n in names if f"`{n}`" not in text]
        assert not missing, f"README does not document {kind} {missing}"


def test_cli_lists_every_registered_extension(capsys):
    main(["strategies"])
    out = capsys.readouterr().out
    assert all(f"{n}: " in out for n in [*STRATEGIES, *VERIFIERS])
    main(["tasks"])
    out = capsys.readouterr().out
    assert all(k in out for k in TASKS)
    main(["models"])
    out = capsys.readouterr().out
    assert all(m in out for m in SHIPPED_MODELS)
