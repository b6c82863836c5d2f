"""`ttc import --tokenizer` with shipped GGUF models (backend/importers/tokens.py): llama.cpp's tokenizer recounts the
token counts Large Language Monkeys' YAML lacks, in batched /tokenize requests, and every count equals the tokenizer
called on that text alone (a prompt as the engine counts it, `count_tokens`; a completion without the special
tokens the tokenizer adds). The batches are made small so the texts span several requests, and one sample spells
out the end-of-text token the batches are separated by, so its batch is counted text by text. The default model
adds no BOS; Gemma's does, so its prompts are one token longer than their text."""

from __future__ import annotations

import pytest
import yaml

import backend.engines.llamacpp as llamacpp
from backend.errors import ModelFileError
from backend.importers.ingest import import_files
from backend.importers.tokens import open_tokenizer
from backend.models.registry import DEFAULT_MODEL, resolve_model
from backend.pricing import model_tokenizer
from store import Store

pytestmark = pytest.mark.real_model

SAMPLES = [
    "Let's think step by step. 12 + 30 = 42.\nThe answer is 42. #### 42",
    "def add(a, b):\n    return a + b  # ünïcödé, 数学, emoji 🙂",
    "",
    "   leading and trailing spaces   ",
    "the end<|im_end|> then more <eos> text",  # each model's end-of-text token (the separator), spelled out
    "#### 7",
]


@pytest.mark.parametrize(("name", "bos"), [(DEFAULT_MODEL, False), ("gemma-3-270m", True)])
def test_a_shipped_model_s_tokenizer_recounts_as_it_counts_each_text_alone(tmp_path, monkeypatch, name, bos):
    try:
        tokenizer = open_tokenizer(name)
    except ModelFileError as e:
        pytest.skip(str(e))
    monkeypatch.setattr(llamacpp, "TOKENIZE_BATCH_CHARS", 80)  # a few texts per /tokenize request
    requests: list = []
    tokenize = llamacpp.LlamaCppEngine.tokenize

    def spy(self, content, add_special):
        requests.append(content)
        return tokenize(self, content, add_special)

    monkeypatch.setattr(llamacpp.LlamaCppEngine, "tokenize", spy)
    folder = tmp_path / "llmonk"
    folder.mkdir()
    paths = []
    for q in range(3):
        samples = SAMPLES[q:] + SAMPLES[:q]
        doc = {"prompt": f"Question: what is {q} + 40?\nAnswer:", "question": f"{q} + 40?", "samples": samples,
               "gt_answer": f"#### {q + 40}", "is_corrects": [i % 2 == 0 for i in range(len(samples))]}  # fmt: skip
        paths.append(folder / f"{q}.yaml")
        paths[-1].write_text(yaml.dump(doc))
    store = Store.open(tmp_path / "store")
    result = import_files(store, "monkeys", paths, model=name, tokenizer=tokenizer)
    assert f"prompt and completion token counts recounted with {name} (llama.cpp)" in str(result)
    batched = [c for c in requests if isinstance(c, list)]
    assert len(batched) > 3 and max(len(c) for c in batched) > 1  # several requests of several texts
    assert SAMPLES[4] in requests  # its batch held more separators than gaps: counted text by text
    df = store.query("SELECT prompt, completion, prompt_tokens p, completion_tokens d FROM samples")
    engine = model_tokenizer(resolve_model(name))
    assert df["p"].tolist() == [engine.count_tokens(t) for t in df["prompt"]]
    assert df["d"].tolist() == [len(engine.tokenize(t, add_special=False)) for t in df["completion"]]
    plain = [len(engine.tokenize(t, add_special=False)) for t in df["prompt"]]
    assert (df["p"] - plain).tolist() == [int(bos)] * len(df)
    assert tokenizer.counts(SAMPLES, add_special=False).tolist() == [
        len(engine.tokenize(t, add_special=False)) for t in SAMPLES
    ]
