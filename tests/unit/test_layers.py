"""The layers of the project and what each may import (docs/ARCHITECTURE.md, "Layers"), checked on the source with
`ast`: every import counts, a lazy one inside a function too.

A module may import modules of its own layer and of the layers below it, never above. A layer marked `peers` holds
packages that must not import each other (the two front ends, CLI and dashboard, share the backend, not code).
Every project module belongs to exactly one layer: a new package fails here until it is placed in `LAYERS`.

Private names stay home: no module imports a `_name` from another module, and a private module (`_views.py`) is
imported only from inside its own package. Tests are exempt from the private rule (they test units, private ones
included), not from the layers."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("store", "backend", "app_pages", "bench", "tests")
SOURCE_FILES = ("app.py",)


@dataclass(frozen=True)
class Layer:
    name: str
    modules: tuple[str, ...]  # module prefixes, the longest match places a module; "=name": that module alone
    peers: bool = False  # True: a package of this layer may not import another package of it


LAYERS = (  # lowest first
    Layer("store", ("store",)),
    Layer(
        "core",
        (
            "=backend",  # the package's own __init__, not what it holds
            "backend.errors",
            "backend.options",
            "backend.registry",
            "backend.ledger",
            "backend.models",
            "backend.visual",
            "backend.export",
            # token confidence is encoded while sampling and read by the metrics: the one metrics module below them
            "backend.metrics.confidence",
        ),
    ),
    Layer(
        "extensions",
        (
            "backend.engines",
            "backend.tasks",
            "backend.prompting",
            "backend.verifiers",
            "backend.strategies",
            "backend.importers",  # the readers of other tools' logs; their ingest writes, so it sits on the write path
        ),
    ),
    Layer("spec", ("backend.pricing", "backend.config")),
    Layer(
        "write path",
        (
            "backend.execution",  # queue, workers, execute, sampling, allocation, analysis, scoring, fanout
            "backend.importers.ingest",
            "backend.importers.dashboard",  # the Run page's Import panel: ingest's import with uploads and globs
            "backend.importers.tokens",  # the recount's tokenizers: a model's llama.cpp one comes through pricing
        ),
    ),
    Layer(
        "read path",
        ("backend.metrics", "backend.run_selection", "backend.planning", "backend.report", "backend.report_html"),
    ),
    Layer("serving", ("backend.serving",)),  # a frozen study applied per request: reads the study, drives engines
    Layer("front ends", ("backend.cli", "backend.docs", "app_pages"), peers=True),
    Layer("app", ("app",)),
    Layer("tools", ("bench", "tests")),
)

PRIVATE_EXCEPTIONS: dict[tuple[str, str], str] = {}  # (importing module, imported name or module): why allowed


def modules() -> dict[str, Path]:
    out = {}
    paths = [p for d in SOURCE_DIRS for p in (ROOT / d).rglob("*.py")] + [ROOT / f for f in SOURCE_FILES]
    for path in paths:
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def is_private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def layer_of(module: str) -> int | None:
    """Index in LAYERS of the layer whose longest prefix matches `module`; None: no layer holds it."""
    best, best_len = None, -1
    for i, layer in enumerate(LAYERS):
        for prefix in layer.modules:
            if _matches(module, prefix) and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    return best


def _matches(module: str, prefix: str) -> bool:
    if prefix.startswith("="):
        return module == prefix[1:]
    return module == prefix or module.startswith(prefix + ".")


def package_of(module: str) -> str:
    """The prefix of the layer entry that holds `module` (its package in the layers' sense)."""
    i = layer_of(module)
    assert i is not None
    return max((p for p in LAYERS[i].modules if _matches(module, p)), key=len).lstrip("=")


@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # the project module imported (a name imported from a package maps to its submodule)
    name: str  # what the statement names: module, or module.attribute
    line: int
    attribute: bool = False  # an attribute read through an imported module, not an import statement


def imports(mods: dict[str, Path]) -> list[Import]:
    """Every import of a project module by a project module, plus every `module._name` attribute read through an
    imported module (`import store.catalog as catalogs; catalogs._LOCK`)."""
    out = []
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases: dict[str, str] = {}  # local name -> project module it is bound to
        for node in ast.walk(tree):
            named: list[tuple[str, str | None]] = []
            if isinstance(node, ast.Import):
                for a in node.names:
                    named.append((a.name, None))
                    if a.asname and a.name in mods:
                        aliases[a.asname] = a.name
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                for a in node.names:
                    named.append((base, a.name))
                    if f"{base}.{a.name}" in mods:
                        aliases[a.asname or a.name] = f"{base}.{a.name}"
            for base, attr in named:
                full = f"{base}.{attr}" if attr else base
                target = full
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if target:
                    out.append(Import(name, target, full, node.lineno))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
                module = aliases[node.value.id]
                out.append(Import(name, module, f"{module}.{node.attr}", node.lineno, attribute=True))
    return out


def layer_violations(mods: dict[str, Path], found_imports: list[Import] | None = None) -> list[str]:
    found = []
    for imp in imports(mods) if found_imports is None else found_imports:
        if imp.attribute:
            continue
        src, dst = layer_of(imp.importer), layer_of(imp.target)
        assert src is not None and dst is not None
        if dst > src:
            found.append(
                f"{imp.importer}:{imp.line} ({LAYERS[src].name}) imports {imp.target} ({LAYERS[dst].name}, a layer above)"
            )
        elif dst == src and LAYERS[src].peers and package_of(imp.importer) != package_of(imp.target):
            found.append(f"{imp.importer}:{imp.line} imports its peer {imp.target} ({LAYERS[src].name})")
    return sorted(set(found))


def private_violations(mods: dict[str, Path], found_imports: list[Import] | None = None) -> list[str]:
    found = []
    for imp in imports(mods) if found_imports is None else found_imports:
        if imp.importer.split(".")[0] == "tests":
            continue
        parts = imp.name.split(".")
        target_parts = imp.target.split(".")
        # a private name read from another module: anything private past the module itself
        private_name = imp.target != imp.importer and any(is_private(p) for p in parts[len(target_parts) :])
        # a private module imported from outside the package that holds it
        private_module = any(
            is_private(p) and not (imp.importer + ".").startswith(".".join(target_parts[:i]) + ".")
            for i, p in enumerate(target_parts)
        )
        if (private_name or private_module) and imp.target != imp.importer:
            key = (imp.importer, imp.name if private_name else ".".join(target_parts))
            if key not in PRIVATE_EXCEPTIONS:
                found.append(f"{imp.importer}:{imp.line} imports private {imp.name}")
    return sorted(set(found))


@cache
def project_imports() -> list[Import]:
    return imports(modules())


def test_every_module_has_a_layer():
    assert [m for m in modules() if layer_of(m) is None] == []


def test_no_module_imports_a_layer_above_it():
    assert layer_violations(modules(), project_imports()) == []


def test_no_private_name_is_imported_from_another_module():
    assert private_violations(modules(), project_imports()) == []


WRITE_PATH = (  # backend/execution/, top-down: a module imports only modules after it (its docstring says why)
    "workers",
    "queue",
    "execute",
    "fanout",
    "allocation",
    "analysis",
    "scoring",
    "sampling",
)


def write_path_back_edges(found_imports: list[Import]) -> list[str]:
    """Imports inside backend/execution/ that point up its top-down order (a lazy one too)."""
    rank = {f"backend.execution.{m}": i for i, m in enumerate(WRITE_PATH)}
    return sorted(
        f"{imp.importer}:{imp.line} imports {imp.target}, above it in the write path"
        for imp in found_imports
        if imp.importer in rank
        and imp.target in rank
        and rank[imp.target] <= rank[imp.importer]
        and imp.target != imp.importer
    )


def test_the_write_path_reads_top_down():
    execution = {m.removeprefix("backend.execution.") for m in modules() if m.startswith("backend.execution.")}
    assert execution == set(WRITE_PATH), "place a new write-path module in WRITE_PATH"
    assert write_path_back_edges(project_imports()) == []


def test_the_exceptions_are_still_needed():
    """An exception whose import is gone is deleted, so the list only shrinks."""
    seen = set()
    for imp in project_imports():
        seen.add((imp.importer, imp.name))
        seen.add((imp.importer, imp.target))
    assert [k for k in PRIVATE_EXCEPTIONS if k not in seen] == []


def _fake_tree(tmp_path: Path, files: dict[str, str]) -> dict[str, Path]:
    mods = {}
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        name = ".".join(Path(rel).with_suffix("").parts).removesuffix(".__init__")
        mods[name] = path
    return mods


def test_the_checks_find_what_they_forbid(tmp_path):
    mods = _fake_tree(
        tmp_path,
        {
            "store/__init__.py": "",
            "store/rows.py": "def f():\n    from backend.errors import TtcError\n",  # lazy, still counts
            "backend/__init__.py": "",
            "backend/errors.py": "class TtcError(Exception): ...\n_hidden = 1\n",
            "backend/cli.py": "import app_pages._store as s\nx = s.cached\n",
            "app_pages/__init__.py": "",
            "app_pages/_store.py": "_pool = 1\n",
            "app_pages/_views.py": "from app_pages._store import _pool\n",
            "app_pages/coverage.py": "from app_pages import _store\nfrom backend.errors import _hidden\n",
        },
    )
    assert layer_violations(mods) == [
        "backend.cli:1 imports its peer app_pages._store (front ends)",
        "store.rows:2 (store) imports backend.errors (core, a layer above)",
    ]
    assert private_violations(mods) == [
        "app_pages._views:1 imports private app_pages._store._pool",
        "app_pages.coverage:2 imports private backend.errors._hidden",
        "backend.cli:1 imports private app_pages._store",
        "backend.cli:2 imports private app_pages._store.cached",
    ]


def test_the_write_path_check_finds_a_back_edge():
    up = Import("backend.execution.sampling", "backend.execution.allocation", "backend.execution.allocation.x", 7)
    down = Import("backend.execution.allocation", "backend.execution.sampling", "backend.execution.sampling.y", 3)
    assert write_path_back_edges([up, down]) == [
        "backend.execution.sampling:7 imports backend.execution.allocation, above it in the write path"
    ]
