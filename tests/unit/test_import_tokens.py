"""`ttc import --tokenizer` with a Hugging Face tokenizer directory (backend/importers/tokens.py): the token counts a
format lacks are the tokenizer's own counts of the same texts (prompts with the special tokens it adds, completions
without), counts the file gives are kept, FLOPs are priced from the recount, and the tokenizer is part of the
import's identity. A tokenizer that cannot be had is one line naming --tokenizer, before anything is written. The
llama.cpp tokenizer of a shipped GGUF: tests/integration/test_import_tokens_real.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from sqlalchemy import text

from backend.cli import main
from backend.errors import ModelFileError, SpecError
from backend.importers.ingest import import_files, load_arch
from backend.importers.tokens import open_tokenizer
from backend.ledger import decode_flops, prefill_flops
from store import Store

tokenizers = pytest.importorskip("tokenizers")

CORPUS = [
    "Question: how many apples are there in all? Answer: there are 12 apples. #### 12",
    "Let's think step by step. Step 1: add 3 apples to the running total. The total is 7. #### 7",
    "def add(a, b):\n    return a + b\n",
]


def hf_tokenizer_dir(folder: Path) -> Path:
    """A real `tokenizers` tokenizer.json: byte-level BPE trained on a few lines, whose post-processor adds a BOS
    (so a prompt's count and a completion's differ by the special token)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=["<s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    folder.mkdir(parents=True)
    tok.save(str(folder / "tokenizer.json"))
    return folder


def _problems(folder: Path) -> list[Path]:
    """Two Monkeys problems (llmonk's YAML: no token counts), one with a literal special token in a sample."""
    folder.mkdir()
    out = []
    for q, samples in enumerate([CORPUS[:2], ["<s> appears in text", "", "#### 12 apples, 3 steps"]]):
        doc = {"prompt": f"Question: problem {q}?\nAnswer:", "question": f"problem {q}?", "samples": samples,
               "gt_answer": "#### 12", "is_corrects": [i % 2 == 0 for i in range(len(samples))]}  # fmt: skip
        out.append(folder / f"{q}.yaml")
        out[-1].write_text(yaml.dump(doc))
    return out


def test_a_tokenizer_directory_recounts_what_the_format_lacks(tmp_path):
    folder = hf_tokenizer_dir(tmp_path / "tok")
    direct = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    store = Store.open(tmp_path / "store")
    paths = _problems(tmp_path / "llmonk")
    arch = load_arch(1_000_000, None)
    result = import_files(store, "monkeys", paths, model="m", arch=arch, tokenizer=open_tokenizer(str(folder)))
    assert "prompt and completion token counts recounted with" in str(result) and "(tokenizers)" in str(result)
    assert not any("token counts" in m for m in result.missing), result.missing
    df = store.query("SELECT prompt, completion, prompt_tokens p, completion_tokens d, flops FROM samples")
    want_p = [len(direct.encode(t).ids) for t in df["prompt"]]
    want_d = [len(direct.encode(t, add_special_tokens=False).ids) for t in df["completion"]]
    assert df["p"].tolist() == want_p and df["d"].tolist() == want_d
    assert want_p[0] == len(direct.encode(df["prompt"][0], add_special_tokens=False).ids) + 1  # its BOS
    assert 0 in want_d  # the empty sample: 0 tokens, not NULL
    sizes = df.groupby("prompt")["p"].transform("size").to_numpy()
    want = decode_flops(arch, df["p"], df["d"]) + prefill_flops(arch, df["p"]) / sizes
    np.testing.assert_allclose(df["flops"], want, rtol=1e-12)  # priced from the recount, as the ledger prices
    with store.catalog.connect() as db:
        options = json.loads(db.execute(text("SELECT options_json FROM imports")).scalar_one())
    assert options["tokenizer"]["kind"] == "tokenizers" and len(options["tokenizer"]["sha256"]) == 64
    # the tokenizer is part of what was imported: the same files and tokenizer again write nothing; without it,
    # they are another import (counts NULL)
    assert import_files(store, "monkeys", paths, model="m", arch=arch, tokenizer=open_tokenizer(str(folder))).already
    plain = import_files(store, "monkeys", paths, model="m", arch=arch)
    assert not plain.already and plain.run_id != result.run_id
    assert any("a tokenizer named recounts them" in m for m in plain.missing), plain.missing


def test_counts_the_file_gives_are_kept_and_only_missing_ones_recounted(tmp_path):
    folder = hf_tokenizer_dir(tmp_path / "tok")
    direct = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    rows = [
        {"question_id": "q1", "prompt": CORPUS[0], "completion": CORPUS[1], "correct": True, "prompt_tokens": 1000,
         "completion_tokens": 7},
        {"question_id": "q1", "prompt": CORPUS[0], "completion": CORPUS[2], "correct": False, "prompt_tokens": 1000},
        {"question_id": "q2", "completion": CORPUS[2], "correct": True},  # no prompt: its count stays NULL
    ]  # fmt: skip
    path = tmp_path / "pool.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    store = Store.open(tmp_path / "store")
    result = import_files(store, "generic", [path], tokenizer=open_tokenizer(str(folder)))
    assert "completion token counts recounted" in str(result) and "prompt and" not in str(result)
    df = store.query("SELECT prompt_tokens p, completion_tokens d FROM samples ORDER BY question_id, sample_idx")
    completion = len(direct.encode(CORPUS[2], add_special_tokens=False).ids)
    assert df.astype(object).where(df.notna(), None).values.tolist() == [
        [1000, 7], [1000, completion], [None, completion]
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        ("nope", SpecError, r"--tokenizer: unknown tokenizer 'nope'; allowed: gemma-3-270m, .*, or a GGUF file or a "
         r"Hugging Face tokenizer directory"),
        ("missing.gguf", ModelFileError, r"--tokenizer: GGUF file .*missing\.gguf' does not exist"),
        ("empty_dir", SpecError, r"--tokenizer: .*empty_dir holds no tokenizer files; allowed: a directory with "
         r"tokenizer\.json"),
        ("bad_dir", SpecError, r"--tokenizer: .*bad_dir/tokenizer\.json cannot be read"),
        ("not.gguf", ModelFileError, r"--tokenizer: .*not\.gguf"),
    ],
)  # fmt: skip
def test_a_tokenizer_that_cannot_be_had_is_one_line_and_nothing_is_written(tmp_path, spec, error, message, capsys):
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "bad_dir").mkdir()
    (tmp_path / "bad_dir" / "tokenizer.json").write_text('{"model": ')
    (tmp_path / "not.gguf").write_bytes(b"GGUF but not really")
    arg = spec if spec == "nope" else str(tmp_path / spec)
    with pytest.raises(error, match=message) as err:
        open_tokenizer(arg)
    assert "\n" not in str(err.value)
    paths = _problems(tmp_path / "llmonk")
    store = tmp_path / "store"
    assert main(["import", "monkeys", *map(str, paths), "--store", str(store), "--tokenizer", arg]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    assert not store.exists()  # the tokenizer is checked before the store is opened


def test_a_tokenizer_directory_without_its_package_names_what_to_install(tmp_path, monkeypatch):
    folder = hf_tokenizer_dir(tmp_path / "tok")
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # an import of it raises ImportError
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(SpecError, match=r"--tokenizer: .*tok is a Hugging Face tokenizer directory, and reading it "
                       r"needs a package not installed \(pip install tokenizers\)"):  # fmt: skip
        open_tokenizer(str(folder))
