"""A page script's bare string literal below its docstring is drawn on the page by Streamlit's magic (an attribute
docstring under a constant appeared above the Strategies page's title): page scripts keep such notes as comments."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app_pages import PAGES

ROOT = Path(__file__).resolve().parents[2]


def bare_strings(path: Path) -> list[int]:
    """Line numbers of the string expressions Streamlit's magic would write, anywhere but the module docstring."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstring = tree.body[0] if tree.body and isinstance(tree.body[0], ast.Expr) else None
    return [
        n.lineno
        for n in tree.body
        if n is not docstring and isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)
        and isinstance(n.value.value, str)
    ]  # fmt: skip


@pytest.mark.parametrize("script", [ROOT / p.path for p in PAGES] + [ROOT / "app.py"], ids=lambda p: p.name)
def test_no_page_script_has_a_bare_string_that_magic_would_draw(script):
    assert bare_strings(script) == [], f"{script.name}: bare strings at lines {bare_strings(script)}"


def test_the_check_sees_an_attribute_docstring(tmp_path):
    script = tmp_path / "page.py"
    script.write_text('"""Doc."""\n\nX = 1\n"""What X is."""\n')
    assert bare_strings(script) == [4]
