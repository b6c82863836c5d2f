"""A GGUF file as a Hugging Face directory (bf16 safetensors, tokenizer, chat template), for vLLM.

vLLM's GGUF loader is CUDA-only, so the registry's models reach vLLM (on a GPU or on the CPU build) as a directory
that `transformers` writes offline: it reads the GGUF, dequantizes every tensor and saves the checkpoint with the
tokenizer and the chat template the GGUF carries. The directory is built in a temporary folder and renamed into
place; `ttc-source.json` beside the weights records the sha256 of the GGUF it came from, so a directory made from
another file is rebuilt, never used. Which models and where: backend/models/registry.py (`prepare_hf`)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from backend.errors import ModelFileError

SOURCE_FILE = "ttc-source.json"
CONVERT_INSTALL_HINT = "pip install torch==2.13.0 transformers gguf accelerate (all in the vllm environment)"


def is_converted(target: Path, sha256: str) -> bool:
    """Whether `target` holds a conversion of the GGUF whose digest is `sha256`."""
    try:
        source = json.loads((target / SOURCE_FILE).read_text())
    except (OSError, ValueError):
        return False
    return source.get("gguf_sha256") == sha256


def convert_gguf(name: str, gguf: Path, sha256: str, target: Path, log=None) -> Path:
    """Write `gguf` (whose digest is `sha256`) as a Hugging Face directory at `target`, unless it is there."""
    if is_converted(target, sha256):
        return target
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig
    except ImportError as e:
        raise ModelFileError(
            f"model {name!r}: converting its GGUF for vLLM needs torch and transformers ({e}); {CONVERT_INSTALL_HINT}"
        ) from None
    (log or (lambda m: print(m, file=sys.stderr)))(
        f"converting {name} to a Hugging Face directory for vLLM (once): {target}"
    )
    t0 = time.perf_counter()
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        weights = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent),
            gguf_file=gguf.name,
            dtype=torch.bfloat16,
            quantization_config=GgufConfig(dequantize=True),
        )
        weights.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        source = {
            "gguf": gguf.name,
            "gguf_sha256": sha256,
            "dtype": "bfloat16",
            "transformers": __import__("transformers").__version__,
            "seconds": round(time.perf_counter() - t0, 1),
        }
        (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=1))
        shutil.rmtree(target, ignore_errors=True)  # one made from another GGUF
        os.replace(tmp, target)
    except Exception as e:
        raise ModelFileError(f"model {name!r}: converting {gguf.name} failed: {e}") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
