"""Token counts a format lacks, recounted from the text with the model's own tokenizer (`ttc import --tokenizer`).

The tokenizer is named as a shipped model (`ttc models`) or a GGUF file, whose tokenizer is llama.cpp's, the one
the worker's engine counts with (backend/pricing.model_tokenizer: the model on one slot, asked only to tokenize),
or as a Hugging Face tokenizer directory, read by the `tokenizers` package (its tokenizer.json) or, without one,
by `transformers` (neither is in the base install; the error says which to install). Texts are counted per
staging batch, each distinct text once (a question's prompt, shared by its samples, is one), and only where the
file gave no count. A prompt is counted with the special tokens the tokenizer adds (BOS), as an engine reports
prompt tokens; a completion without them, as tokens generated. A recount is of the stored text: a completion
decoded and tokenized again may differ slightly from the tokens the model generated (a text has several
tokenizations)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from backend.errors import SpecError, UnknownNameError
from backend.importers.base import file_sha256

FIELD = "--tokenizer"
HF_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
)
"""A Hugging Face directory's tokenizer files: the ones present are its identity (their SHA-256s)."""

Counter = Callable[[list[str], bool], list[int]]


@dataclass
class Tokenizer:
    """A tokenizer to recount with. `sha256` (of the GGUF file or of the directory's tokenizer files) enters the
    import's content hash: another tokenizer gives another import. `load` makes the counter on first use (a GGUF
    maps its weights: seconds), so an import whose files hold every count never loads it."""

    name: str
    kind: str  # llama.cpp, tokenizers, transformers
    sha256: str
    load: Callable[[], Counter] = field(repr=False)
    _counter: Counter | None = field(default=None, init=False, repr=False)

    def counts(self, texts: Sequence[str], add_special: bool) -> np.ndarray:
        """(len(texts),) token counts; `add_special`: with the special tokens the tokenizer adds (a prompt)."""
        if self._counter is None:
            self._counter = self.load()
        if not texts:
            return np.zeros(0, dtype=np.int64)
        return np.asarray(self._counter(list(texts), add_special), dtype=np.int64)

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "sha256": self.sha256}


def open_tokenizer(spec: str) -> Tokenizer:
    """The tokenizer `spec` names, checked now (before any file is read): a shipped model's name, a GGUF file, or a
    Hugging Face tokenizer directory."""
    from backend.models.registry import SHIPPED_MODELS

    spec = spec.strip()
    allowed = "a shipped model's name (ttc models), a GGUF file, or a Hugging Face tokenizer directory"
    if not spec:
        raise SpecError(FIELD, "empty", allowed)
    if spec in SHIPPED_MODELS:
        return _gguf(spec, SHIPPED_MODELS[spec].sha256)
    path = Path(spec).expanduser()
    if path.is_dir():
        return _hf_directory(path)
    if path.suffix.lower() == ".gguf" or path.is_file():
        return _gguf(spec, None)
    raise UnknownNameError(
        FIELD, "tokenizer", spec, SHIPPED_MODELS, "a GGUF file or a Hugging Face tokenizer directory"
    )


def _gguf(spec: str, pinned: str | None) -> Tokenizer:
    from backend.models.registry import resolve_model

    model = resolve_model(spec, FIELD)  # a shipped model is assembled and checked, a file's header read (or refused)
    assert model.path is not None

    def load() -> Counter:
        from backend.pricing import model_tokenizer

        return model_tokenizer(model).count_tokens_many

    return Tokenizer(model.name, "llama.cpp", pinned or file_sha256(model.path), load)


def _hf_directory(folder: Path) -> Tokenizer:
    present = [n for n in HF_FILES if (folder / n).is_file()]
    if not present:
        raise SpecError(FIELD, f"{folder} holds no tokenizer files", f"a directory with {', '.join(HF_FILES[:2])}")
    digest = hashlib.sha256()
    for name in present:
        digest.update(name.encode() + b"\0" + hashlib.sha256((folder / name).read_bytes()).digest())
    if "tokenizer.json" in present:
        try:
            import tokenizers
        except ImportError:
            pass
        else:
            try:
                tok = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
            except Exception as e:  # the Rust reader raises plain Exception on a bad file
                raise SpecError(
                    FIELD, f"{folder / 'tokenizer.json'} cannot be read ({str(e).splitlines()[0]})"
                ) from None
            tok.no_truncation()
            tok.no_padding()

            def fast(texts: list[str], add_special: bool) -> list[int]:
                return [len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=add_special)]

            return Tokenizer(str(folder), "tokenizers", digest.hexdigest(), lambda: fast)
    try:
        from transformers import AutoTokenizer
    except ImportError:
        need = "pip install tokenizers" if "tokenizer.json" in present else "pip install transformers sentencepiece"
        raise SpecError(
            FIELD,
            f"{folder} is a Hugging Face tokenizer directory, and reading it needs a package not installed ({need})",
        ) from None
    try:
        auto = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as e:  # transformers raises OSError, ValueError, ImportError... on a directory it cannot read
        raise SpecError(
            FIELD, f"transformers cannot read the tokenizer in {folder} ({str(e).splitlines()[0]})"
        ) from None

    def slow(texts: list[str], add_special: bool) -> list[int]:
        ids = auto(texts, add_special_tokens=add_special, truncation=False)["input_ids"]
        return [len(i) for i in ids]

    return Tokenizer(str(folder), "transformers", digest.hexdigest(), lambda: slow)
