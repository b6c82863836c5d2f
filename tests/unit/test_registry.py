import json
import os

import pytest

from backend.errors import ModelFileError, UnknownNameError
from backend.models.registry import SHIPPED_MODELS, ShippedModel, cache_dir, prepare_shipped, resolve_model


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TTC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_gemma_assembles_and_verifies_then_reuses_the_stamp(private_cache):
    model = SHIPPED_MODELS["gemma-3-270m"]
    path = prepare_shipped(model)
    assert path.parent == private_cache / "models" and path.stat().st_size == model.size_bytes
    stamp = json.loads(path.with_suffix(".gguf.verified.json").read_text())
    assert stamp["sha256"] == model.sha256
    mtime = path.stat().st_mtime_ns
    assert prepare_shipped(model) == path and path.stat().st_mtime_ns == mtime  # not rebuilt


def test_tampered_file_is_rebuilt(private_cache):
    model = SHIPPED_MODELS["gemma-3-270m"]
    path = prepare_shipped(model)
    with open(path, "r+b") as f:
        f.seek(1000)
        f.write(b"tampered")
    os.utime(path, ns=(1, 1))  # the stamp no longer matches: re-assemble from the parts
    prepare_shipped(model)
    from backend.models.registry import verify_file

    verify_file(path, model.sha256)


def test_wrong_digest_is_refused_and_nothing_is_left(private_cache):
    real = SHIPPED_MODELS["gemma-3-270m"]
    fake = ShippedModel("gemma-wrong", "x", real.parts, "0" * 64, real.size_bytes, "few_shot", "n/a")
    with pytest.raises(ModelFileError, match="refusing it"):
        prepare_shipped(fake)
    assert list((private_cache / "models").iterdir()) == []


def test_missing_part_package_names_the_install(private_cache):
    fake = ShippedModel(
        "ghost", "x", (("ttc-no-such-package", "part01.bin"),), "0" * 64, 1, "chat", "pip install ghost-parts"
    )
    with pytest.raises(
        ModelFileError, match="part package 'ttc-no-such-package' is not installed; pip install ghost-parts"
    ):
        prepare_shipped(fake)


def test_resolve_reads_architecture_and_prompting():
    qwen = resolve_model("qwen2.5-coder-0.5b-instruct")
    assert (qwen.arch.n_layers, qwen.arch.d_model, qwen.arch.architecture) == (24, 896, "qwen2")
    assert 0.45e9 < qwen.arch.n_params < 0.52e9 and qwen.prompt_style == "chat" and "<|im_start|>" in qwen.chat_template
    gemma = resolve_model("gemma-3-270m")
    assert gemma.prompt_style == "few_shot" and gemma.arch.n_layers == 18
    assert resolve_model(str(gemma.path)).name == gemma.path.stem


def test_hub_ids_only_for_vllm():
    with pytest.raises(UnknownNameError, match="unknown model 'Qwen/Qwen2.5-0.5B-Instruct'"):
        resolve_model("Qwen/Qwen2.5-0.5B-Instruct")
    hub = resolve_model("Qwen/Qwen2.5-0.5B-Instruct", hub_ok=True)
    assert hub.is_hub_id and hub.arch is None


def test_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("TTC_CACHE_DIR", str(tmp_path))
    assert cache_dir() == tmp_path


def test_hf_directory_counts_only_when_made_from_the_pinned_gguf(private_cache):
    """vLLM takes a shipped model as the directory converted from its GGUF; a directory whose stamp names another
    GGUF (or none) is not used."""
    from backend.models.hf_convert import SOURCE_FILE
    from backend.models.registry import hf_dir, hf_ready

    model = SHIPPED_MODELS["gemma-3-270m"]
    target = hf_dir(model)
    assert target == private_cache / "models" / "gemma-3-270m-hf" and not hf_ready(model)
    target.mkdir(parents=True)
    (target / SOURCE_FILE).write_text(json.dumps({"gguf_sha256": "0" * 64}))
    assert not hf_ready(model)
    (target / SOURCE_FILE).write_text(json.dumps({"gguf_sha256": model.sha256}))
    assert hf_ready(model)
    resolved = resolve_model("gemma-3-270m", hub_ok=True)  # the vLLM engine's view: GGUF numbers, converted weights
    assert resolved.hf_source == str(target) and resolved.arch == resolve_model("gemma-3-270m").arch


def test_converting_without_torch_says_what_to_install(private_cache, monkeypatch):
    import sys

    from backend.models.registry import prepare_hf

    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ModelFileError, match=r"^model 'gemma-3-270m': converting its GGUF for vLLM needs torch"):
        prepare_hf(SHIPPED_MODELS["gemma-3-270m"])
