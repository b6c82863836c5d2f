"""The listing commands a new user types first."""

from backend.cli import main


def test_models_lists_the_registry(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "qwen2.5-coder-0.5b-instruct (default)" in out and "gemma-3-270m" in out and "or any local .gguf path" in out


def test_tasks_lists_kinds_and_knobs(capsys):
    assert main(["tasks", "--all"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("task kinds: reasoning_gym, humaneval, math_jsonl")
    assert "reasoning_gym/basic_arithmetic\tconfig: min_terms, max_terms, min_digits, max_digits" in out


def test_strategies_list_their_parameter_tables(capsys):
    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    assert "beam_search: " in out and "  width = 4  [int in [1, 1024]]" in out
    assert "  delimiter = '\\n\\n'  [any text]" in out
    listing = out.split("verifiers (in a spec: a name, or {name: ..., <option>: ...}):\n", 1)[1]
    from backend.verifiers import VERIFIERS

    for name, entry in VERIFIERS.items():  # every registered verifier and each of its options, from the registry
        assert f"  {name}: {entry.help}" in listing
        for option in entry.options.model_fields:
            assert f"    {option} " in listing
    assert "    model required  the process reward model" in listing
