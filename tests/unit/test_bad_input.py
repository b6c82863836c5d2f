"""Every kind of bad input gives one line naming the field and what is allowed, and writes nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from backend.cli import main
from backend.models.registry import SHIPPED_MODELS, prepare_shipped

GOOD_TASK = """
task:
  kind: reasoning_gym
  datasets: [{name: basic_arithmetic, size: 2, config: {min_terms: 2, max_terms: 2, min_digits: 1, max_digits: 1}}]
"""


def spec(models="[gemma-3-270m]", task=GOOD_TASK, extra="samples_per_question: 2\n"):
    return f"name: bad\nmodels: {models}\n{task}\n{extra}"


@pytest.fixture(scope="module")
def gemma_path():
    return prepare_shipped(SHIPPED_MODELS["gemma-3-270m"])


def _cases(tmp_path, gemma_path):
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"NOPE" + b"\0" * 4096)
    truncated = tmp_path / "truncated.gguf"
    with open(gemma_path, "rb") as src, open(truncated, "wb") as dst:
        dst.write(src.read(8 << 20))  # the header is whole, the tensors are cut off
    jsonl = tmp_path / "math.jsonl"
    jsonl.write_text('{"problem": "1+1?", "answer": "2"}\n{"problem": "2+2?"}\n')
    math_task = f"task: {{kind: math_jsonl, path: {jsonl}}}"
    return {
        "unknown model": (
            spec(models="[gpt-17]"),
            "models[0]: unknown model 'gpt-17'; allowed: gemma-3-270m, qwen2.5-coder-0.5b-instruct, qwen2.5-coder-1.5b-instruct, or a path to a local .gguf file",
        ),
        "unknown task kind": (
            spec(task="task: {kind: gsm9k}"),
            "task.kind: unknown task kind 'gsm9k'; allowed: humaneval, math_jsonl, reasoning_gym",
        ),
        "unknown dataset": (
            spec(task="task: {kind: reasoning_gym, datasets: [{name: basic_arithmetix, size: 2}]}"),
            "task.datasets[0].name: unknown reasoning-gym dataset 'basic_arithmetix'; allowed: ",
        ),
        "unknown difficulty knob": (
            spec(
                task="task: {kind: reasoning_gym, datasets: [{name: basic_arithmetic, size: 2, config: {max_termz: 3}}]}"
            ),
            "task.datasets[0].config.max_termz: not a basic_arithmetic setting; allowed: min_terms, max_terms, min_digits, max_digits",
        ),
        "zero samples": (
            spec(extra="samples_per_question: 0"),
            "samples_per_question: Input should be greater than 0 (got 0)",
        ),
        "negative samples": (
            spec(extra="samples_per_question: -3"),
            "samples_per_question: Input should be greater than 0 (got -3)",
        ),
        "malformed yaml": ("name: bad\nmodels: [gemma-3-270m\ntask: {", "malformed YAML at line"),
        "unknown key": (
            spec(extra="samples_per_question: 2\ntemprature: 0.7"),
            "temprature: unknown key; allowed: name, models, task, samples_per_question, temperature, top_p, max_tokens, seed, engine",
        ),
        "unknown nested key": (
            spec(extra="samples_per_question: 2\nengine: {kind: llamacpp, slots: 4}"),
            "engine.slots: unknown key; allowed: kind, n_parallel, n_ctx_per_slot, threads",
        ),
        "zero slots": (
            spec(extra="samples_per_question: 2\nengine: {kind: llamacpp, n_parallel: 0}"),
            "engine.n_parallel: Input should be greater than or equal to 1 (got 0)",
        ),
        "slots neither a number nor auto": (
            spec(extra="samples_per_question: 2\nengine: {kind: llamacpp, n_parallel: many}"),
            "engine.n_parallel: Input should be a valid integer, unable to parse string as an integer (got 'many')",
        ),
        "negative vLLM KV cache": (
            spec(extra="samples_per_question: 2\nengine: {kind: vllm, kv_cache_gib: -1}"),
            "engine.kv_cache_gib: Input should be greater than 0 (got -1)",
        ),
        "an API key where its variable's name goes": (
            spec(
                extra="samples_per_question: 2\nengine: {kind: openai, base_url: 'http://127.0.0.1:1/v1', api_key_env: sk-abc}"
            ),
            "engine.api_key_env: String should match pattern '^[A-Za-z_][A-Za-z0-9_]*$'",
        ),
        "jsonl line without answer": (spec(task=math_task), f"{jsonl}:2: missing required field 'answer'"),
        "corrupt gguf": (spec(models=f"[{corrupt}]"), f"models[0]: {corrupt}: not a GGUF file (bad magic b'NOPE')"),
        "truncated gguf": (
            spec(models=f"[{truncated}]"),
            f"models[0]: {truncated}: truncated GGUF file: tensors need 253113024 bytes, file has {8 << 20}",
        ),
        "unknown strategy": (
            spec(extra="samples_per_question: 2\nstrategies: [{name: beem_search}]"),
            "strategies[0].name: unknown strategy 'beem_search'; allowed: beam_search, best_of_n,",
        ),
        "unknown strategy parameter": (
            spec(
                extra="samples_per_question: 2\nverifiers: [self_verify]\nstrategies: [{name: beam_search, config: {widht: 2}}]"
            ),
            "strategies[0].config.widht: not a parameter of beam_search; allowed: n, width,",
        ),
        "strategy without verifier": (
            spec(extra="samples_per_question: 2\nstrategies: [{name: beam_search}]"),
            "strategies[0].verifier: beam_search needs a verifier and the spec lists none; allowed: oracle, self_verify, self_verify_chat, prm_vllm",
        ),
        "unknown verifier": (
            spec(extra="samples_per_question: 2\nverifiers: [gpt_judge]"),
            "verifiers[0]: unknown verifier 'gpt_judge'; allowed: oracle, prm_vllm, self_verify, self_verify_chat",
        ),
        "zero budget": (
            spec(extra="samples_per_question: 2\nbudgets: [4, 0]"),
            "budgets: budgets must be > 0, got 0.0",
        ),
        "openai without url": (
            spec(extra="samples_per_question: 2\nengine: {kind: openai}"),
            "engine.base_url: required but missing; allowed: the server's /v1 URL, e.g. http://127.0.0.1:8000/v1",
        ),
        "missing gguf": (
            spec(models=f"[{tmp_path / 'nope.gguf'}]"),
            f"models[0]: GGUF file '{tmp_path / 'nope.gguf'}' does not exist",
        ),
    }


CASE_NAMES = [
    "unknown model",
    "unknown task kind",
    "unknown dataset",
    "unknown difficulty knob",
    "zero samples",
    "negative samples",
    "malformed yaml",
    "unknown key",
    "unknown nested key",
    "jsonl line without answer",
    "corrupt gguf",
    "truncated gguf",
    "missing gguf",
    "unknown strategy",
    "unknown strategy parameter",
    "strategy without verifier",
    "unknown verifier",
    "zero budget",
    "openai without url",
]


@pytest.mark.parametrize("case", CASE_NAMES)
def test_bad_spec_gives_one_line_and_writes_nothing(case, tmp_path, gemma_path, capsys):
    text, expected = _cases(tmp_path, gemma_path)[case]
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(text)
    store = tmp_path / "store"
    code = main(["run", str(spec_file), "--store", str(store), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ")
    assert expected in err, err
    assert "sk-abc" not in err  # a secret pasted where its variable's name goes is never echoed
    assert not store.exists(), "a rejected spec must not create the store"


@pytest.mark.parametrize("kind", ["under a file", "in /proc"])
def test_unwritable_store_dir(kind, tmp_path, capsys, write_spec):
    spec_file = write_spec(spec())
    if kind == "under a file":
        blocker = tmp_path / "afile"
        blocker.write_text("x")
        store = blocker / "store"
        expected = f"--store: {store} cannot be created ({blocker} is not a directory); allowed: a writable directory"
    else:
        store = Path("/proc/ttc-store-test")
        expected = "--store: /proc/ttc-store-test is not writable"
    code = main(["run", str(spec_file), "--store", str(store), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert expected in err, err
    assert not store.exists()


def test_not_a_store_dir_is_refused(tmp_path, capsys, write_spec):
    spec_file = write_spec(spec())
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"meow")
    assert main(["run", str(spec_file), "--store", str(other), "--quiet"]) == 2
    assert "is a non-empty directory that is not a ttc store" in capsys.readouterr().err
    assert sorted(p.name for p in other.iterdir()) == ["cat.jpg"]


def test_sql_on_missing_store_and_bad_query(tmp_path, capsys):
    assert main(["sql", "--store", str(tmp_path / "none"), "select 1"]) == 2
    assert "is not a ttc store" in capsys.readouterr().err
    from store import Store

    Store.open(tmp_path / "s")
    assert main(["sql", "--store", str(tmp_path / "s"), "select nope from samples"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: query failed: Binder Error") and len(err.strip().splitlines()) == 1
    shutil.rmtree(tmp_path / "s")


def test_unknown_humaneval_id(tmp_path, capsys, write_spec):
    spec_file = write_spec(
        "name: he\nmodels: [gemma-3-270m]\ntask: {kind: humaneval, ids: [HumanEval/999]}\nsamples_per_question: 1\n"
    )
    assert main(["run", str(spec_file), "--store", str(tmp_path / "s"), "--quiet"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "error: task.ids: unknown HumanEval problem 'HumanEval/999'; allowed: HumanEval/0 .. HumanEval/163"
    )
    assert not (tmp_path / "s").exists()
