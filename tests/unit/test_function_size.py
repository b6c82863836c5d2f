"""No function outside bench/ and tests/ holds more than `MAX_STATEMENTS` statements, counted recursively (the
body of an `if`, a loop, a `with`, a `try` and its handlers count too; a nested function counts as one statement and
is checked on its own; a docstring is not a statement). A longer function is split into named steps."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_STATEMENTS = 60
CHECKED = ("app.py", "app_pages", "backend", "store")

ALLOWED = {
    # "path::qualified name": why it may be longer for now (this list only shrinks)
}


def statements(body: list[ast.stmt]) -> int:
    n = 0
    for stmt in body:
        n += 1
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for field in ("body", "orelse", "finalbody"):
            n += statements(getattr(stmt, field, None) or [])
        for handler in getattr(stmt, "handlers", None) or []:
            n += statements(handler.body)
        for case in getattr(stmt, "cases", None) or []:
            n += statements(case.body)
    return n


def without_docstring(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.stmt]:
    body = fn.body
    first = body[0] if body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return body[1:]
    return body


def function_sizes(path: Path, rel: str) -> dict[str, int]:
    """{"rel::Qualified.name": statements} of every function and method in the file."""
    out: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = prefix + child.name
                out[f"{rel}::{name}"] = statements(without_docstring(child))
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(encoding="utf-8")), "")
    return out


def project_function_sizes() -> dict[str, int]:
    out: dict[str, int] = {}
    for entry in CHECKED:
        base = ROOT / entry
        for path in [base] if base.is_file() else sorted(base.rglob("*.py")):
            out.update(function_sizes(path, path.relative_to(ROOT).as_posix()))
    return out


def test_no_function_is_over_the_statement_limit():
    sizes = project_function_sizes()
    over = {name: n for name, n in sizes.items() if n > MAX_STATEMENTS and name not in ALLOWED}
    assert over == {}, f"split these into named steps (limit {MAX_STATEMENTS} statements): {over}"


def test_every_allowed_function_still_needs_it():
    sizes = project_function_sizes()
    assert {name: sizes.get(name) for name in ALLOWED if sizes.get(name, 0) <= MAX_STATEMENTS} == {}


def test_statements_are_counted_recursively(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(
        '''
def f(x):
    """Doc."""
    if x:
        y = 1
    else:
        y = 2
    for i in range(3):
        try:
            y += i
        except ValueError:
            pass
        finally:
            y -= 1
    match y:
        case 1:
            return 1

    def inner():
        a = 1
        return a

    return y


class C:
    def m(self):
        return 1
'''
    )
    assert function_sizes(path, "m.py") == {"m.py::f": 12, "m.py::f.inner": 2, "m.py::C.m": 1}
