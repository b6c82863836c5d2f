"""No comment, docstring or document cites a file the repository lacks: someone who clones it can follow every
reference. Checked: Markdown files (`*.md`) and `docs/...` paths named in the comments and docstrings of every
Python file and in every Markdown, TOML, YAML and shell file; and every project path (`backend/ledger.py`) that
docs/ARCHITECTURE.md and README.md name. URLs are other sites' files and are left alone."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".git", ".venv", ".venv-vllm", "node_modules", "studies", "__pycache__", ".pytest_cache", ".ruff_cache"}
TEXT_SUFFIXES = {".md", ".toml", ".yaml", ".yml", ".sh"}
URL = re.compile(r"\w+://\S+")
CITED = re.compile(r"(?<![\w/.-])(?:[\w.-]+/)*[\w.-]+\.md\b|(?<![\w/.-])docs/[\w./-]*[\w/]")
PROJECT_PATH = re.compile(r"(?<![\w/.-])(?:app_pages|backend|store|bench|tests|scripts|examples|docs)/[\w./-]*\.\w+\b")
MAPS = ("docs/ARCHITECTURE.md", "README.md")

EXCEPTIONS: dict[tuple[str, str], str] = {
    # (citing file, cited path): why it may stay for now
}


def project_files() -> list[Path]:
    out = []
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        if any(part in SKIP_DIRS for part in rel.parts[:-1]) or not path.is_file():
            continue
        if path.suffix == ".py" or path.suffix in TEXT_SUFFIXES or rel.as_posix() == ".streamlit/config.toml":
            out.append(path)
    return sorted(out)


def prose_of_python(text: str) -> str:
    """The comments and docstrings of a Python file: where it cites things (string literals are data)."""
    parts = []
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            parts.append(tok.string)
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                parts.append(doc)
        # attribute docstrings: a string statement right after an assignment
        body = getattr(node, "body", None)
        if isinstance(body, list):
            for prev, stmt in zip(body, body[1:]):
                if (
                    isinstance(prev, ast.Assign | ast.AnnAssign)
                    and isinstance(stmt, ast.Expr)
                    and isinstance(stmt.value, ast.Constant)
                    and isinstance(stmt.value.value, str)
                ):
                    parts.append(stmt.value.value)
    return "\n".join(parts)


def citations(path: Path, text: str) -> set[str]:
    prose = URL.sub(" ", prose_of_python(text) if path.suffix == ".py" else text)
    found = {m.rstrip(".") for m in CITED.findall(prose)}
    rel = path.relative_to(ROOT).as_posix()
    if rel in MAPS:
        found |= {m.rstrip(".") for m in PROJECT_PATH.findall(prose)}
    return found


def exists(cited: str, citing: Path) -> bool:
    return (ROOT / cited).exists() or (citing.parent / cited).exists()


@cache
def missing_citations() -> list[str]:
    return [
        f"{rel} cites {cited}"
        for rel, cited in all_citations()
        if not exists(cited, ROOT / rel) and (rel, cited) not in EXCEPTIONS
    ]


@cache
def all_citations() -> list[tuple[str, str]]:
    """(citing file, cited path) over the repository."""
    return [
        (path.relative_to(ROOT).as_posix(), cited)
        for path in project_files()
        for cited in sorted(citations(path, path.read_text(encoding="utf-8")))
    ]


def test_every_cited_file_exists():
    assert missing_citations() == []


def test_the_exceptions_are_still_needed():
    """An exception whose citation is gone is deleted, so the list only shrinks."""
    still = {(rel, cited) for rel, cited in all_citations()}
    assert [k for k in EXCEPTIONS if k not in still] == []


def test_architecture_is_linked_from_the_readme():
    assert "(docs/ARCHITECTURE.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_citations_are_found_where_they_are_written():
    py = ROOT / "backend" / "example.py"  # a path under the repository, never written
    text = (
        '"""Module doc: see GONE.md and docs/ARCHITECTURE.md."""\n'
        "# a comment citing docs/missing/page.md\n"
        'DATA = "not_a_citation.md"  # but this comment cites README.md\n'
        'URL = 1\n"""Attribute doc: https://example.org/elsewhere.md is a URL."""\n'
    )
    assert citations(py, text) == {"GONE.md", "docs/ARCHITECTURE.md", "docs/missing/page.md", "README.md"}
    md = ROOT / "docs" / "ARCHITECTURE.md"
    assert citations(md, "`backend/ledger.py`, `store/gone.py` and [a](docs/x.md).") == {
        "backend/ledger.py",
        "store/gone.py",
        "docs/x.md",
    }
    assert exists("backend/ledger.py", md) and not exists("store/gone.py", md)
