"""The Run page's Import panel: files uploaded to the dashboard and paths on its machine, imported as `ttc import`
does (backend/importers/ingest.py), with the same typed errors and the same all-or-nothing commit."""

from __future__ import annotations

import glob
import shlex
import tempfile
from collections.abc import Sequence
from pathlib import Path

from backend.errors import SpecError
from backend.importers.ingest import ImportResult, import_files, load_arch
from backend.importers.tokens import open_tokenizer
from store import Store


def expand_paths(text: str) -> list[Path]:
    """Paths or glob patterns (shell-quoted, whitespace-separated) on the dashboard's machine, each pattern sorted;
    a pattern that matches no file is an error naming it."""
    try:
        patterns = shlex.split(text)
    except ValueError as e:
        raise SpecError(
            "paths", f"{text!r} does not parse ({e})", "paths or glob patterns, quoted as in a shell"
        ) from None
    out: list[Path] = []
    for pattern in patterns:
        found = sorted(glob.glob(str(Path(pattern).expanduser()), recursive=True))
        files = [Path(p) for p in found if Path(p).is_file()]
        if not files:
            raise SpecError(
                "paths", f"{pattern!r} matches no file", "files or glob patterns on the dashboard's machine"
            )
        out.extend(files)
    return out


def import_from_dashboard(
    store: Store,
    fmt: str,
    *,
    uploads: Sequence[tuple[str, bytes]] = (),
    paths: str = "",
    name: str | None = None,
    model: str = "imported",
    params: int | None = None,
    options: dict | None = None,
    tokenizer: str | None = None,
) -> ImportResult:
    """Uploaded files keep their names (a Monkeys problem's id is its file's name) in a temporary folder that is
    removed after the import; the import's provenance keeps each file's SHA-256, so re-importing the same content
    from another folder writes nothing. `tokenizer`: as `ttc import --tokenizer` (a shipped model's name, a GGUF
    file or a Hugging Face tokenizer directory on the dashboard's machine)."""
    arch = load_arch(params, None)
    recount = open_tokenizer(tokenizer) if tokenizer is not None else None
    local = expand_paths(paths) if paths.strip() else []
    if not uploads and not local:
        raise SpecError("files", "no file given", "upload files or type their paths on the dashboard's machine")
    with tempfile.TemporaryDirectory(prefix="ttc-upload-") as tmp:
        written = []
        for i, (filename, data) in enumerate(uploads):
            folder = Path(tmp) / str(i)  # two uploads of one name stay two files
            folder.mkdir()
            target = folder / Path(filename).name
            target.write_bytes(data)
            written.append(target)
        return import_files(
            store,
            fmt,
            [*written, *local],
            name=name or None,
            model=model or "imported",
            options=options,
            arch=arch,
            tokenizer=recount,
        )
