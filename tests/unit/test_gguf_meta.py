"""Our fast GGUF header reader agrees with the gguf package's reader on a shipped model, and sizes attention from
the header's head count and head size."""

from pathlib import Path

import pytest

from backend.errors import ModelFileError
from backend.models.gguf_meta import GGUFHeader, TensorInfo, read_header
from backend.models.registry import SHIPPED_MODELS, prepare_shipped


@pytest.mark.real_model
def test_header_matches_gguf_reader():
    import gguf

    path = prepare_shipped(SHIPPED_MODELS["gemma-3-270m"])
    ours = read_header(path)
    ref = gguf.GGUFReader(path)
    assert [t.name for t in ours.tensors] == [t.name for t in ref.tensors]
    assert [t.n_elements for t in ours.tensors] == [int(t.n_elements) for t in ref.tensors]
    assert [ours.data_start + t.offset for t in ours.tensors] == [int(t.data_offset) for t in ref.tensors]
    assert [t.n_bytes for t in ours.tensors] == [int(t.n_bytes) for t in ref.tensors]
    for key in ("general.architecture", "gemma3.block_count", "gemma3.embedding_length", "gemma3.context_length"):
        assert ours.metadata[key] == ref.fields[key].contents()
    arch = ours.arch()
    assert arch.n_params == sum(int(t.n_elements) for t in ref.tensors)  # tied embeddings: all of them count


# ---- attention width per shipped architecture ------------------------------------------------------------------
# Hand numbers from each model's published config.json (Hugging Face): num_hidden_layers, hidden_size,
# num_attention_heads and head_dim (absent for Qwen2: hidden_size / num_attention_heads).
#   Qwen2.5-Coder-0.5B-Instruct: 24 layers, 896 wide, 14 heads x 64   -> d_attn  896
#   Qwen2.5-Coder-1.5B-Instruct: 28 layers, 1536 wide, 12 heads x 128 -> d_attn 1536
#   Gemma-3-270M:                18 layers, 640 wide, 4 heads x 256   -> d_attn 1024 (not d_model)
PUBLISHED = {
    "qwen2.5-coder-0.5b-instruct": ("qwen2", 24, 896, 14, None, 896),
    "qwen2.5-coder-1.5b-instruct": ("qwen2", 28, 1536, 12, None, 1536),
    "gemma-3-270m": ("gemma3", 18, 640, 4, 256, 1024),
}


def _header(arch: str, n_layers: int, d_model: int, n_heads: int, head_dim: int | None) -> GGUFHeader:
    """A header with the metadata keys llama.cpp's converter writes for the architecture (key/value_length only
    where head_dim is not d_model / n_heads, as for Gemma 3)."""
    meta = {
        "general.architecture": arch,
        f"{arch}.block_count": n_layers,
        f"{arch}.embedding_length": d_model,
        f"{arch}.attention.head_count": n_heads,
        f"{arch}.attention.head_count_kv": 1,
    }
    if head_dim is not None:
        meta |= {f"{arch}.attention.key_length": head_dim, f"{arch}.attention.value_length": head_dim}
    tensors = (TensorInfo("token_embd.weight", (d_model, 100), 0, 0), TensorInfo("blk.0.attn_q.weight", (8, 8), 0, 0))
    return GGUFHeader(Path("synthetic.gguf"), 3, meta, tensors, 0, 0)


@pytest.mark.parametrize("name", PUBLISHED)
def test_attention_width_is_heads_times_head_dim(name):
    arch_name, n_layers, d_model, n_heads, head_dim, d_attn = PUBLISHED[name]
    arch = _header(arch_name, n_layers, d_model, n_heads, head_dim).arch()
    assert (arch.n_layers, arch.d_model, arch.d_attn, arch.architecture) == (n_layers, d_model, d_attn, arch_name)
    # f(t) − 2N = 4 · n_layers · d_attn · t (QKᵀ and AV, 2·t·d_attn each per layer), by hand at t = 100
    by_hand = {"qwen2.5-coder-0.5b-instruct": 8_601_600, "qwen2.5-coder-1.5b-instruct": 17_203_200}
    by_hand["gemma-3-270m"] = 7_372_800  # 4·18·1024·100; with d_model (640) it would read 4,608,000
    assert arch.token_flops(100) - 2 * arch.n_params == by_hand[name]


def test_a_header_without_head_count_is_refused():
    header = _header("qwen2", 24, 896, 14, None)
    del header.metadata["qwen2.attention.head_count"]
    with pytest.raises(ModelFileError, match="lacks qwen2.attention.head_count"):
        header.arch()


@pytest.mark.real_model
@pytest.mark.parametrize("name", PUBLISHED)
def test_shipped_gguf_headers_give_the_published_attention_width(name):
    """The real GGUF header of each shipped model (skipped where its part packages are not installed)."""
    try:
        path = prepare_shipped(SHIPPED_MODELS[name])
    except ModelFileError as e:
        pytest.skip(str(e))
    arch_name, n_layers, d_model, n_heads, head_dim, d_attn = PUBLISHED[name]
    header = read_header(path)
    assert header.metadata[f"{arch_name}.attention.head_count"] == n_heads
    arch = header.arch()
    assert (arch.n_layers, arch.d_model, arch.d_attn, arch.architecture) == (n_layers, d_model, d_attn, arch_name)
