"""Every kind of bad input gives one line naming the field and what is allowed, and writes nothing.

The table below goes through the real CLI (`ttc run SPEC --store DIR`): run spec fields, task suites and their
knobs, budgets, prices, engines, verifiers, strategies and model paths. The dashboard's URL parameters and price
cells are in tests/ui/test_bad_input_pages.py; SQL typed by a user in tests/unit/test_sql_safety.py and
tests/ui/test_injection.py."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest

from backend.cli import main
from backend.errors import SpecError
from backend.metrics.cost import Price, read_price
from backend.models.registry import SHIPPED_MODELS, prepare_shipped

GOOD_TASK = """
task:
  kind: reasoning_gym
  datasets: [{name: basic_arithmetic, size: 2, config: {min_terms: 2, max_terms: 2, min_digits: 1, max_digits: 1}}]
"""
BEAM = "verifiers: [self_verify]\nstrategies: [{name: beam_search}]\n"


def beam(entry: str) -> str:
    """Spec lines for one beam search whose list entry adds `entry` (", config: {...}")."""
    return BEAM.replace("beam_search}", "beam_search" + entry + "}")


RATIO = ", ratios: ['1:1']"
MODEL_ALLOWED = "allowed: a registry name (ttc models) or a path to a whole local .gguf file"
JSONL_ALLOWED = "allowed: a JSONL file, one object per line with 'problem' and 'answer'"


def spec(models="[gemma-3-270m]", task=GOOD_TASK, extra="samples_per_question: 2\n", name="bad"):
    return f"name: {name}\nmodels: {models}\n{task}\n{extra}"


def rg(dataset: str) -> str:
    return f"task: {{kind: reasoning_gym, datasets: [{dataset}]}}"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Bad files of every kind, written once for the whole table (the truncated GGUF is 8 MB)."""
    d = tmp_path_factory.mktemp("bad-files")
    (d / "corrupt.gguf").write_bytes(b"NOPE" + b"\0" * 4096)
    with open(prepare_shipped(SHIPPED_MODELS["gemma-3-270m"]), "rb") as src:
        (d / "truncated.gguf").write_bytes(src.read(8 << 20))  # the header is whole, the tensors are cut off
    (d / "empty.gguf").write_bytes(b"")
    (d / "notes.txt").write_text("not a model")
    (d / "models.gguf").mkdir()
    (d / "math.jsonl").write_text('{"problem": "1+1?", "answer": "2"}\n{"problem": "2+2?"}\n')
    (d / "dup.jsonl").write_text(
        '{"id": "a", "problem": "1+1?", "answer": "2"}\n{"id": "a", "problem": "2+2?", "answer": "4"}\n'
    )
    (d / "badline.jsonl").write_text('{"problem": "1+1?", "answer": "2"}\n{oops\n')
    (d / "list.jsonl").write_text("[1, 2]\n")
    (d / "blank.jsonl").write_text("\n\n")
    (d / "latin1.jsonl").write_bytes(b'{"problem": "caf\xe9", "answer": "1"}\n')
    (d / "jsonl-dir").mkdir()
    return d


def _cases(d: Path) -> dict[str, tuple[str, str]]:
    """name -> (spec text, the expected line after 'error: ', or its start; {spec} is the spec file's path)."""
    math_task = lambda f: f"task: {{kind: math_jsonl, path: {d / f}}}"  # noqa: E731
    return {
        # ---- the spec document and its top-level fields
        "malformed yaml": ("name: bad\nmodels: [gemma-3-270m\ntask: {", "{spec}: malformed YAML at line"),
        "spec is a list": (
            "- name: bad\n",
            "{spec}: must be a mapping of keys to values, got list; allowed: name, models, task",
        ),
        "empty spec": (
            "",
            "{spec}: must be a mapping of keys to values, got nothing (the spec is empty); allowed: name, models",
        ),
        "unknown key": (
            spec(extra="samples_per_question: 2\ntemprature: 0.7"),
            "temprature: unknown key; allowed: name, models, task, samples_per_question, temperature, top_p, max_tokens, seed, engine",
        ),
        "bad run name": (
            spec(name="'my run!'"),
            "name: String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'",
        ),
        "missing name": (spec().removeprefix("name: bad\n"), "name: required but missing"),
        "zero samples": (
            spec(extra="samples_per_question: 0"),
            "samples_per_question: Input should be greater than 0 (got 0)",
        ),
        "negative samples": (
            spec(extra="samples_per_question: -3"),
            "samples_per_question: Input should be greater than 0 (got -3)",
        ),
        "samples not a number": (
            spec(extra="samples_per_question: lots"),
            "samples_per_question: Input should be a valid integer, unable to parse string as an integer (got 'lots')",
        ),
        "fractional samples": (
            spec(extra="samples_per_question: 2.5"),
            "samples_per_question: Input should be a valid integer, got a number with a fractional part (got 2.5)",
        ),
        "samples as yes": (
            spec(extra="samples_per_question: yes"),
            "samples_per_question: expected a number, not true/false (got True)",
        ),
        "temperature too high": (
            spec(extra="samples_per_question: 2\ntemperature: 9"),
            "temperature: Input should be less than or equal to 5 (got 9)",
        ),
        "temperature not a number": (
            spec(extra="samples_per_question: 2\ntemperature: hot"),
            "temperature: Input should be a valid number, unable to parse string as a number (got 'hot')",
        ),
        "zero top_p": (
            spec(extra="samples_per_question: 2\ntop_p: 0"),
            "top_p: Input should be greater than 0 (got 0)",
        ),
        "max_tokens too large": (
            spec(extra="samples_per_question: 2\nmax_tokens: 1000000"),
            "max_tokens: Input should be less than or equal to 32768 (got 1000000)",
        ),
        "negative seed": (
            spec(extra="samples_per_question: 2\nseed: -1"),
            "seed: Input should be greater than or equal to 0",
        ),
        # ---- models: names, paths, prices
        "unknown model": (
            spec(models="[gpt-17]"),
            "models[0]: unknown model 'gpt-17'; allowed: gemma-3-270m, qwen2.5-coder-0.5b-instruct, qwen2.5-coder-1.5b-instruct, or a path to a local .gguf file",
        ),
        "no models": (spec(models="[]"), "models: List should have at least 1 item after validation, not 0"),
        "model listed twice": (
            spec(models="[gemma-3-270m, gemma-3-270m]"),
            "models: model 'gemma-3-270m' is listed twice",
        ),
        "model is a number": (
            spec(models="[42]"),
            "models[0]: Input should be a valid string (got 42); allowed: registry names (ttc models), paths to local .gguf files",
        ),
        "unknown model key": (
            spec(models="[{name: gemma-3-270m, prise: 1}]"),
            "models[0].prise: unknown key; allowed: name, price_in_per_m, price_out_per_m, prompt_style",
        ),
        "negative price": (
            spec(models="[{name: gemma-3-270m, price_in_per_m: -1}]"),
            "models[0].price_in_per_m: Input should be greater than or equal to 0 (got -1)",
        ),
        "price not a number": (
            spec(models="[{name: gemma-3-270m, price_out_per_m: cheap}]"),
            "models[0].price_out_per_m: Input should be a valid number, unable to parse string as a number (got 'cheap'); allowed: USD per 1M output tokens",
        ),
        "infinite price": (
            spec(models="[{name: gemma-3-270m, price_in_per_m: .inf}]"),
            "models[0].price_in_per_m: Input should be a finite number (got inf)",
        ),
        "unknown prompt style": (
            spec(models="[{name: gemma-3-270m, prompt_style: poem}]"),
            "models[0].prompt_style: Input should be 'chat' or 'few_shot' (got 'poem')",
        ),
        "missing gguf": (
            spec(models=f"[{d / 'nope.gguf'}]"),
            f"models[0]: GGUF file '{d / 'nope.gguf'}' does not exist; {MODEL_ALLOWED}",
        ),
        "gguf path is a directory": (
            spec(models=f"[{d / 'models.gguf'}]"),
            f"models[0]: '{d / 'models.gguf'}' is a directory, not a GGUF file; {MODEL_ALLOWED}",
        ),
        "corrupt gguf": (
            spec(models=f"[{d / 'corrupt.gguf'}]"),
            f"models[0]: {d / 'corrupt.gguf'}: not a GGUF file (bad magic b'NOPE'); {MODEL_ALLOWED}",
        ),
        "empty gguf": (
            spec(models=f"[{d / 'empty.gguf'}]"),
            f"models[0]: {d / 'empty.gguf'}: not a GGUF file (0 bytes); {MODEL_ALLOWED}",
        ),
        "text file as model": (
            spec(models=f"[{d / 'notes.txt'}]"),
            f"models[0]: {d / 'notes.txt'}: not a GGUF file (11 bytes); {MODEL_ALLOWED}",
        ),
        "truncated gguf": (
            spec(models=f"[{d / 'truncated.gguf'}]"),
            f"models[0]: {d / 'truncated.gguf'}: truncated GGUF file: tensors need 253113024 bytes, file has {8 << 20}",
        ),
        "NUL in model path": (
            spec(models='["a\\x00b.gguf"]'),
            f"models[0]: 'a\\x00b.gguf' contains a NUL character; {MODEL_ALLOWED}",
        ),
        # ---- task suites, datasets and their knobs
        "unknown task kind": (
            spec(task="task: {kind: gsm9k}"),
            "task.kind: unknown task kind 'gsm9k'; allowed: humaneval, math_jsonl, reasoning_gym",
        ),
        "task without kind": (
            spec(task="task: {datasets: []}"),
            "task.kind: required but missing; allowed: reasoning_gym, humaneval, math_jsonl",
        ),
        "task is a string": (
            spec(task="task: reasoning_gym"),
            "task: must be a mapping of options, got str; allowed: kind (reasoning_gym, humaneval, math_jsonl) and its options",
        ),
        "unknown dataset": (
            spec(task=rg("{name: basic_arithmetix, size: 2}")),
            "task.datasets[0].name: unknown reasoning-gym dataset 'basic_arithmetix'; allowed: ",
        ),
        "no datasets": (spec(task=rg("")), "task.datasets: List should have at least 1 item after validation, not 0"),
        "zero dataset size": (
            spec(task=rg("{name: basic_arithmetic, size: 0}")),
            "task.datasets[0].size: Input should be greater than 0 (got 0)",
        ),
        "dataset size too large": (
            spec(task=rg("{name: basic_arithmetic, size: 1000000}")),
            "task.datasets[0].size: Input should be less than or equal to 100000 (got 1000000)",
        ),
        "unknown dataset key": (
            spec(task=rg("{name: basic_arithmetic, size: 2, sise: 3}")),
            "task.datasets[0].sise: unknown key; allowed: name, size, config, level",
        ),
        "unknown difficulty knob": (
            spec(task=rg("{name: basic_arithmetic, size: 2, config: {max_termz: 3}}")),
            "task.datasets[0].config.max_termz: not a basic_arithmetic setting; allowed: min_terms, max_terms, min_digits, max_digits",
        ),
        "knob of the wrong type": (
            spec(task=rg("{name: basic_arithmetic, size: 2, config: {max_terms: lots}}")),
            "task.datasets[0].config.max_terms: 'lots' is not a whole number; allowed: a whole number, e.g. the default 6",
        ),
        "knobs reasoning-gym rejects": (
            spec(task=rg("{name: basic_arithmetic, size: 2, config: {min_terms: 5, max_terms: 2}}")),
            "task.datasets[0].config: rejected by reasoning-gym: max_terms must be >= min_terms; allowed: knob values reasoning-gym accepts; its defaults: min_terms=2",
        ),
        "knobs not a mapping": (
            spec(task=rg("{name: basic_arithmetic, size: 2, config: [1]}")),
            "task.datasets[0].config: Input should be a valid dictionary (got [1]); allowed: the dataset's difficulty knobs",
        ),
        "jsonl file missing": (
            spec(task=math_task("nope.jsonl")),
            f"task.path: JSONL file '{d / 'nope.jsonl'}' does not exist; {JSONL_ALLOWED}",
        ),
        "jsonl path is a directory": (
            spec(task=math_task("jsonl-dir")),
            f"task.path: '{d / 'jsonl-dir'}' is a directory; {JSONL_ALLOWED}",
        ),
        "jsonl line without answer": (
            spec(task=math_task("math.jsonl")),
            f"{d / 'math.jsonl'}:2: missing required field 'answer'",
        ),
        "jsonl line not JSON": (
            spec(task=math_task("badline.jsonl")),
            f"{d / 'badline.jsonl'}:2: not valid JSON (Expecting property name enclosed in double quotes); {JSONL_ALLOWED}",
        ),
        "jsonl line not an object": (
            spec(task=math_task("list.jsonl")),
            f"{d / 'list.jsonl'}:1: not a JSON object; {JSONL_ALLOWED}",
        ),
        "jsonl duplicate ids": (
            spec(task=math_task("dup.jsonl")),
            f"{d / 'dup.jsonl'}:2: id 'a' is already used on line 1; allowed: a distinct 'id' per line",
        ),
        "jsonl without questions": (
            spec(task=math_task("blank.jsonl")),
            f"{d / 'blank.jsonl'}: no questions (the file is empty); {JSONL_ALLOWED}",
        ),
        "jsonl not UTF-8": (
            spec(task=math_task("latin1.jsonl")),
            f"{d / 'latin1.jsonl'}:1: not UTF-8 text; {JSONL_ALLOWED}",
        ),
        "jsonl size zero": (
            spec(task=f"task: {{kind: math_jsonl, path: {d / 'dup.jsonl'}, size: 0}}"),
            "task.size: Input should be greater than 0 (got 0)",
        ),
        "unknown humaneval id": (
            spec(task="task: {kind: humaneval, ids: [HumanEval/999]}"),
            "task.ids: unknown HumanEval problem 'HumanEval/999'; allowed: HumanEval/0 .. HumanEval/163",
        ),
        "humaneval id of another form": (
            spec(task="task: {kind: humaneval, ids: [problem-3]}"),
            "task.ids: unknown HumanEval problem 'problem-3'; allowed: HumanEval/0 .. HumanEval/163",
        ),
        "humaneval size too large": (
            spec(task="task: {kind: humaneval, size: 500}"),
            "task.size: Input should be less than or equal to 164 (got 500)",
        ),
        # ---- strategies and verifiers
        "unknown strategy": (
            spec(extra="samples_per_question: 2\nstrategies: [{name: beem_search}]"),
            "strategies[0].name: unknown strategy 'beem_search'; allowed: beam_search, best_of_n,",
        ),
        "strategy not a mapping": (
            spec(extra="samples_per_question: 2\nstrategies: [beam_search]"),
            "strategies[0]: Input should be a valid dictionary or instance of StrategySpec (got 'beam_search'); allowed: ",
        ),
        "unknown strategy key": (
            spec(extra=f"samples_per_question: 2\n{beam(', budget: 3')}"),
            "strategies[0].budget: unknown key; allowed: name, config, verifier, ratios",
        ),
        "unknown strategy parameter": (
            spec(extra=f"samples_per_question: 2\n{beam(', config: {widht: 2}')}"),
            "strategies[0].config.widht: not a parameter of beam_search; allowed: n, width,",
        ),
        "strategy parameter out of range": (
            spec(extra=f"samples_per_question: 2\n{beam(', config: {width: 0}')}"),
            "strategies[0].config.width: 0 is out of range; allowed: int in [1, 1024]",
        ),
        "strategy parameter of the wrong type": (
            spec(extra=f"samples_per_question: 2\n{beam(', config: {width: two}')}"),
            "strategies[0].config.width: must be int, got 'two'; allowed: int in [1, 1024]",
        ),
        "strategy without verifier": (
            spec(extra="samples_per_question: 2\nstrategies: [{name: beam_search}]"),
            "strategies[0].verifier: beam_search needs a verifier and the spec lists none; allowed: oracle, self_verify, self_verify_chat, prm_vllm",
        ),
        "strategy's unknown verifier": (
            spec(extra=f"samples_per_question: 2\n{beam(', verifier: judge')}"),
            "strategies[0].verifier: unknown verifier 'judge'; allowed: oracle, prm_vllm, self_verify, self_verify_chat",
        ),
        "ratio of the wrong form": (
            spec(
                extra="samples_per_question: 2\nverifiers: [self_verify]\nstrategies: [{name: sequential_revisions, ratios: ['4-1']}]"
            ),
            "strategies[0].ratios: a ratio is 'S:P' with whole S, P >= 0 and not both 0, e.g. '4:1', '1:1', '0:1'; got '4-1'",
        ),
        "unquoted ratio": (
            spec(
                extra="samples_per_question: 2\nverifiers: [self_verify]\nstrategies: [{name: sequential_revisions, ratios: [1:1]}]"
            ),
            "strategies[0].ratios: got the number 61: YAML reads an unquoted S:P such as 1:1 as a base-60 number; "
            "quote each ratio, e.g. ['4:1', '1:1', '0:1']",
        ),
        "ratio listed twice": (
            spec(
                extra="samples_per_question: 2\nverifiers: [self_verify]\nstrategies: [{name: sequential_revisions, ratios: ['1:1', '1:1']}]"
            ),
            "strategies[0].ratios: ratio '1:1' is listed twice",
        ),
        "ratios on a strategy without a sweep": (
            spec(extra=f"samples_per_question: 2\n{beam(RATIO)}"),
            "strategies[0].ratios: beam_search has no sequential:parallel sweep; allowed: ratios on sequential_revisions",
        ),
        "unknown verifier": (
            spec(extra="samples_per_question: 2\nverifiers: [gpt_judge]"),
            "verifiers[0]: unknown verifier 'gpt_judge'; allowed: oracle, prm_vllm, self_verify, self_verify_chat",
        ),
        "verifier listed twice": (
            spec(extra="samples_per_question: 2\nverifiers: [self_verify, self_verify]"),
            "verifiers: verifier 'self_verify' is listed twice (its scores are stored under its name)",
        ),
        "misspelt verifier option": (
            spec(extra="samples_per_question: 2\nverifiers: [{name: prm_vllm, modle: x}]"),
            "verifiers[0].modle: not an option of prm_vllm; allowed: model, step_separator",
        ),
        "option of a verifier that has none": (
            spec(extra="samples_per_question: 2\nverifiers: [{name: self_verify, depth: 3}]"),
            "verifiers[0].depth: not an option of self_verify; allowed: none",
        ),
        # ---- engines
        "unknown engine": (
            spec(extra="samples_per_question: 2\nengine: {kind: tgi}"),
            "engine.kind: unknown engine 'tgi'; allowed: llamacpp, openai, vllm",
        ),
        "engine not a mapping": (
            spec(extra="samples_per_question: 2\nengine: llamacpp"),
            "engine: must be a mapping of options, got str; allowed: kind (llamacpp, openai, vllm) and its options",
        ),
        "unknown engine option": (
            spec(extra="samples_per_question: 2\nengine: {kind: llamacpp, slots: 4}"),
            "engine.slots: unknown key; allowed: kind, replicas, n_parallel, n_ctx_per_slot, threads",
        ),
        "zero slots": (
            spec(extra="samples_per_question: 2\nengine: {kind: llamacpp, n_parallel: 0}"),
            "engine.n_parallel: Input should be greater than or equal to 1 (got 0)",
        ),
        "slots neither a number nor auto": (
            spec(extra="samples_per_question: 2\nengine: {kind: llamacpp, n_parallel: many}"),
            "engine.n_parallel: Input should be a valid integer, unable to parse string as an integer (got 'many')",
        ),
        "negative threads": (
            spec(extra="samples_per_question: 2\nengine: {kind: llamacpp, threads: -2}"),
            "engine.threads: Input should be greater than or equal to 1 (got -2)",
        ),
        "context not a number": (
            spec(extra="samples_per_question: 2\nengine: {kind: llamacpp, n_ctx_per_slot: big}"),
            "engine.n_ctx_per_slot: Input should be a valid integer, unable to parse string as an integer (got 'big'); allowed: prompt + completion tokens a slot holds",
        ),
        "negative vLLM KV cache": (
            spec(extra="samples_per_question: 2\nengine: {kind: vllm, kv_cache_gib: -1}"),
            "engine.kv_cache_gib: Input should be greater than 0 (got -1)",
        ),
        "openai without url": (
            spec(extra="samples_per_question: 2\nengine: {kind: openai}"),
            "engine.base_url: required but missing; allowed: the server's /v1 URL, e.g. http://127.0.0.1:8000/v1",
        ),
        "openai url not a URL": (
            spec(extra="samples_per_question: 2\nengine: {kind: openai, base_url: 'localhost 8000'}"),
            "engine.base_url: expected an http(s) URL such as http://127.0.0.1:8000/v1",
        ),
        "an API key where its variable's name goes": (
            spec(
                extra="samples_per_question: 2\nengine: {kind: openai, base_url: 'http://127.0.0.1:1/v1', api_key_env: sk-abc}"
            ),
            "engine.api_key_env: String should match pattern '^[A-Za-z_][A-Za-z0-9_]*$'",
        ),
        # ---- budgets
        "zero budget": (
            spec(extra="samples_per_question: 2\nbudgets: [4, 0]"),
            "budgets: budgets must be > 0, got 0.0",
        ),
        "negative budget": (
            spec(extra=f"samples_per_question: 2\n{BEAM}budgets: [-1]"),
            "budgets: budgets must be > 0, got -1.0",
        ),
        "budget not a number": (
            spec(extra=f"samples_per_question: 2\n{BEAM}budgets: [lots]"),
            "budgets[0]: Input should be a valid number, unable to parse string as a number (got 'lots'); allowed: FLOP budgets per question",
        ),
        "budget with a unit in it": (
            spec(extra=f"samples_per_question: 2\n{BEAM}budgets: ['1e12 FLOPs']"),
            "budgets[0]: Input should be a valid number, unable to parse string as a number (got '1e12 FLOPs')",
        ),
        "budgets not a list": (
            spec(extra=f"samples_per_question: 2\n{BEAM}budgets: 4"),
            "budgets: Input should be a valid list (got 4); allowed: FLOP budgets per question",
        ),
        "infinite budget": (
            spec(extra=f"samples_per_question: 2\n{BEAM}budgets: [.inf]"),
            "budgets: budgets must be finite",
        ),
        "unknown budget unit": (
            spec(extra=f"samples_per_question: 2\n{BEAM}budgets: [4]\nbudget_unit: tokens"),
            "budget_unit: Input should be 'samples' or 'flops' (got 'tokens')",
        ),
        "FLOP counts as samples": (
            spec(extra=f"samples_per_question: 2\n{BEAM}budgets: [1e12]"),
            "budgets: 1e+12 samples per question looks like a FLOP count (budget_unit: samples); allowed: with budget_unit: samples, up to 1e+06",
        ),
        "sample counts as FLOPs": (
            spec(extra=f"samples_per_question: 2\n{BEAM}budgets: [4]\nbudget_unit: flops"),
            "budgets: 4 FLOPs per question buys no token of any model (budget_unit: flops); allowed: with budget_unit: flops, 1e+06 or more",
        ),
        "budgets without strategies": (
            spec(extra="samples_per_question: 2\nbudgets: [4]"),
            "budgets: given but the spec lists no strategies to spend them; allowed: budgets together with strategies",
        ),
    }


CASE_NAMES = list(_cases(Path("/cases")))


@pytest.mark.parametrize("case", CASE_NAMES)
def test_bad_spec_gives_one_line_and_writes_nothing(case, tmp_path, files, capsys):
    text, expected = _cases(files)[case]
    spec_file = tmp_path / "spec.yaml"
    expected = expected.replace("{spec}", str(spec_file))
    spec_file.write_text(text)
    store = tmp_path / "store"
    code = main(["run", str(spec_file), "--store", str(store), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: " + expected.split(":")[0]), err  # the field comes first
    assert expected in err, err
    assert "sk-abc" not in err  # a secret pasted where its variable's name goes is never echoed
    assert not store.exists(), "a rejected spec must not create the store"


def test_missing_spec_file(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.yaml"), "--store", str(tmp_path / "s"), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: SPEC: file '{tmp_path / 'nope.yaml'}' does not exist; allowed: a path to a YAML run spec"
    )
    assert not (tmp_path / "s").exists()


# ---- store paths ----------------------------------------------------------------------------------------------
def _store_case(kind: str, tmp_path: Path) -> tuple[Path, str]:
    if kind == "under a file":
        blocker = tmp_path / "afile"
        blocker.write_text("x")
        store = blocker / "store"
        return (
            store,
            f"--store: {store} cannot be created ({blocker} is not a directory); allowed: a writable directory",
        )
    if kind == "a file":
        store = tmp_path / "store.txt"
        store.write_text("x")
        return store, f"--store: {store} cannot be created ({store} is not a directory); allowed: a writable directory"
    if kind == "in /proc":
        return Path("/proc/ttc-store-test"), "--store: /proc/ttc-store-test is not writable"
    if kind == "not a store":
        other = tmp_path / "photos"
        other.mkdir()
        (other / "cat.jpg").write_bytes(b"meow")
        return other, f"--store: {other} is a non-empty directory that is not a ttc store; allowed: an empty or new"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["under a file", "a file", "in /proc", "not a store"])
def test_unusable_store_dir(kind, tmp_path, capsys, write_spec):
    spec_file = write_spec(spec())
    store, expected = _store_case(kind, tmp_path)
    before = sorted(p.name for p in store.iterdir()) if store.is_dir() else None
    code = main(["run", str(spec_file), "--store", str(store), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert expected in err, err
    assert (sorted(p.name for p in store.iterdir()) if store.is_dir() else None) == before  # nothing written


@pytest.mark.parametrize("kind", ["missing", "a file", "not a store"])
def test_reading_commands_refuse_what_is_not_a_store(kind, tmp_path, capsys):
    root = tmp_path / "x"
    if kind == "a file":
        root.write_text("x")
    elif kind == "not a store":
        root.mkdir()
    for argv in (["sql", "--store", str(root), "select 1"], ["compute-optimal", "--store", str(root)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert (
            err
            == f"error: store: {root} is not a ttc store (no catalog.sqlite); run `ttc run SPEC --store {root}` first"
        )
    assert kind != "missing" or not root.exists()


def test_bad_query_is_one_line(tmp_path, capsys):
    from store import Store

    Store.open(tmp_path / "s")
    assert main(["sql", "--store", str(tmp_path / "s"), "select nope from samples"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: query failed: Binder Error") and len(err.strip().splitlines()) == 1
    shutil.rmtree(tmp_path / "s")


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["compute-optimal", "--n-bins", "0"], "error: --n-bins: 0 bins; allowed: a whole number of difficulty bins"),
        (["compute-optimal", "--n-bins", "-3"], "error: --n-bins: -3 bins; allowed: a whole number of difficulty bins"),
        (["compute-optimal", "--band-boot", "-1"], "error: --band-boot: -1 resamples; allowed: a whole number of"),
        (["store", "compact", "--run", "nope"], "error: --run: no run 'nope' in "),
    ],
)
def test_maintenance_and_analysis_options_are_checked(argv, expected, tmp_path, capsys):
    from store import Store

    Store.open(tmp_path / "s")
    assert main([*argv, "--store", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected) and len(err.strip().splitlines()) == 1, err


CATALOG_ALLOWED = (
    "allowed: postgresql://USER@HOST[:PORT]/DATABASE (password from $TTC_CATALOG_URL, PGPASSWORD or ~/.pgpass)"
)


@pytest.mark.parametrize(
    "url, expected",
    [
        ("mysql://u@h/db", "--catalog: 'mysql' catalogs are not supported; " + CATALOG_ALLOWED),
        ("sqlite:///x.db", "--catalog: 'sqlite' catalogs are not supported; " + CATALOG_ALLOWED),
        ("not a url", "--catalog: 'not a url' is not a database URL; " + CATALOG_ALLOWED),
        ("postgresql://u@h", "--catalog: postgresql://u@h names no database; " + CATALOG_ALLOWED),
        ("postgresql://u:pw@h/db?sslmode=off", "--catalog: postgresql://u@h/db?sslmode=off has query parameters; "),
        ("postgresql+asyncpg://u@h/db", "--catalog: driver 'asyncpg' is not supported; " + CATALOG_ALLOWED),
    ],
)
def test_a_bad_catalog_url_is_one_line_and_creates_nothing(url, expected, tmp_path, capsys, write_spec):
    spec_file = write_spec(spec())
    for argv in (["run", str(spec_file), "--quiet"], ["worker", "--once"], ["sql", "select 1"]):
        assert main([*argv, "--store", str(tmp_path / "s"), "--catalog", url]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {expected}") and len(err.strip().splitlines()) == 1, err
        assert "pw" not in err
    assert not (tmp_path / "s").exists()


# ---- prices typed on the Cost-of-pass page ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "cell, problem",
    [
        (-1.0, "-1.0 is not allowed"),
        (None, "is blank"),
        (math.nan, "is blank"),
        ("  ", "is blank"),
        ("cheap", "'cheap' is not a number"),
        (math.inf, "inf is not allowed"),
        (True, "True is not a price"),
    ],
)
def test_bad_price_cell_names_the_model_and_column(cell, problem):
    field = "Prices, gemma-3-270m, input USD / 1M tokens"
    with pytest.raises(SpecError) as e:
        read_price(cell, field)
    assert str(e.value) == f"{field}: {problem}; allowed: a finite number >= 0 (USD per 1M tokens)"


def test_price_itself_refuses_what_read_price_refuses():
    assert read_price("0.25", "p") == 0.25 and read_price(0, "p") == 0.0
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="prices must be finite and >= 0"):
            Price(bad, 0.1)
