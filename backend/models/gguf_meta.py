"""Read a GGUF file's header: metadata and tensor table, and check the file is whole.

Why not `gguf.GGUFReader`: it materialises every tokenizer array as numpy fields and takes 9–13 s on the shipped
0.5B model here; this reader walks the same format (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md)
over an mmap in well under a second and skips what the ledger does not need. The tests check it agrees with
`gguf.GGUFReader` on the shipped models."""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

from backend.errors import ModelFileError
from backend.ledger import ModelArch

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_U64 = struct.Struct("<Q")
_KEEP_ARRAYS = {"general.tags"}  # small arrays worth returning; tokenizer arrays are skipped


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def n_bytes(self) -> int:
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(self.ggml_type)]
        return self.n_elements // block * type_size


@dataclass(frozen=True)
class GGUFHeader:
    path: Path
    version: int
    metadata: dict
    tensors: tuple[TensorInfo, ...]
    data_start: int
    file_size: int

    def arch(self) -> ModelArch:
        """Architecture numbers for the FLOPs ledger (see backend/ledger.py for what N counts)."""
        a = self.metadata.get("general.architecture")
        try:
            n_layers = int(self.metadata[f"{a}.block_count"])
            d_model = int(self.metadata[f"{a}.embedding_length"])
            n_heads = int(self.metadata[f"{a}.attention.head_count"])
        except KeyError as e:
            raise ModelFileError(f"{self.path}: GGUF metadata lacks {e.args[0]}; cannot size the model") from None
        if n_heads < 1:
            raise ModelFileError(f"{self.path}: GGUF metadata has {a}.attention.head_count = {n_heads}")
        d_attn = ModelArch.attention_width_of(
            n_heads,
            d_model,
            self.metadata.get(f"{a}.attention.key_length"),
            self.metadata.get(f"{a}.attention.value_length"),
        )
        sizes = {t.name: t.n_elements for t in self.tensors}
        total = sum(sizes.values())
        embed = sizes.get("token_embd.weight", 0)
        # Tied embeddings: the lookup table doubles as the output projection, so it stays in N.
        n_params = total if "output.weight" not in sizes else total - embed
        vocab = self.tensors[[t.name for t in self.tensors].index("token_embd.weight")].shape[-1] if embed else 0
        return ModelArch(
            n_params=int(n_params),
            n_layers=n_layers,
            d_model=d_model,
            n_ctx_train=int(self.metadata.get(f"{a}.context_length", 0)),
            vocab_size=int(vocab),
            architecture=str(a),
            d_attn=d_attn,
        )


class _Cursor:
    def __init__(self, buf, path):
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise ModelFileError(f"{self.path}: truncated GGUF header (ends at byte {len(self.buf)})")
        (v,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return v

    def string(self) -> str:
        n = self.take("<Q")
        if n > len(self.buf) - self.pos:
            raise ModelFileError(f"{self.path}: corrupt GGUF header (string of {n} bytes past end of file)")
        s = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return s.decode("utf-8", errors="replace")

    def value(self, vtype: int, keep: bool = True):
        if vtype in _SCALARS:
            return self.take(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype, count = self.take("<I"), self.take("<Q")
            if etype in _SCALARS and not keep:
                self.pos += struct.calcsize(_SCALARS[etype]) * count
                if self.pos > len(self.buf):
                    raise ModelFileError(f"{self.path}: truncated GGUF header")
                return None
            if etype == _STRING and not keep:  # a tokenizer's vocabulary: step over each string, decode none
                for _ in range(count):
                    if self.pos + 8 > len(self.buf):
                        raise ModelFileError(f"{self.path}: truncated GGUF header (ends at byte {len(self.buf)})")
                    self.pos += 8 + _U64.unpack_from(self.buf, self.pos)[0]
                if self.pos > len(self.buf):
                    raise ModelFileError(f"{self.path}: corrupt GGUF header (string past end of file)")
                return None
            items = [self.value(etype, keep) for _ in range(count)]
            return items if keep else None
        raise ModelFileError(f"{self.path}: corrupt GGUF header (unknown value type {vtype})")


def read_header(path: str | os.PathLike) -> GGUFHeader:
    """Parse the header and tensor table; raise `ModelFileError` if the file is not GGUF, corrupt or cut short."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such GGUF file")
    size = path.stat().st_size
    if size < 24:
        raise ModelFileError(f"{path}: not a GGUF file ({size} bytes)")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        if buf[:4] != b"GGUF":
            raise ModelFileError(f"{path}: not a GGUF file (bad magic {bytes(buf[:4])!r})")
        cur = _Cursor(buf, path)
        cur.pos = 4
        version = cur.take("<I")
        if version < 2:
            raise ModelFileError(f"{path}: GGUF version {version} is not supported (need 2 or later)")
        n_tensors, n_kv = cur.take("<Q"), cur.take("<Q")
        if n_tensors > 1_000_000 or n_kv > 1_000_000:
            raise ModelFileError(f"{path}: corrupt GGUF header ({n_tensors} tensors, {n_kv} keys)")
        meta: dict = {}
        for _ in range(n_kv):
            key = cur.string()
            vtype = cur.take("<I")
            keep = vtype != _ARRAY or key in _KEEP_ARRAYS
            val = cur.value(vtype, keep)
            if keep:
                meta[key] = val
        tensors = []
        for _ in range(n_tensors):
            name = cur.string()
            n_dims = cur.take("<I")
            if n_dims > 8:
                raise ModelFileError(f"{path}: corrupt GGUF tensor table ({name} has {n_dims} dims)")
            shape = tuple(cur.take("<Q") for _ in range(n_dims))
            gtype, offset = cur.take("<I"), cur.take("<Q")
            tensors.append(TensorInfo(name, shape, gtype, offset))
        align = int(meta.get("general.alignment", 32))
        data_start = (cur.pos + align - 1) // align * align
    header = GGUFHeader(path, version, meta, tuple(tensors), data_start, size)
    try:
        end = max((data_start + t.offset + t.n_bytes for t in tensors), default=data_start)
    except (ValueError, KeyError) as e:
        raise ModelFileError(f"{path}: corrupt GGUF tensor table ({e})") from None
    if end > size:
        raise ModelFileError(f"{path}: truncated GGUF file: tensors need {end} bytes, file has {size}")
    return header
