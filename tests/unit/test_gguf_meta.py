"""Our fast GGUF header reader agrees with the gguf package's reader on a shipped model."""

import pytest

from backend.models.gguf_meta import read_header
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
