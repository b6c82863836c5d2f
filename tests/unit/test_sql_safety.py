"""SQL stays SQL: no query is assembled from a user's text, and `ttc sql` (raw SQL on purpose) only reads.

The source check reads every module of the dashboard, the backend and the store: SQL text built with an f-string,
`%`, `+` or `.format`, and a query call handed anything but a constant, must be one of the reviewed sites below,
each of which builds only identifiers from a fixed registry (tables, columns) or escaped file paths, with every
value a bound parameter. A new unsafe site fails here until it is parameterised (or reviewed and listed)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from backend.cli import main
from store import Store

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ["app.py", "app_pages", "backend", "store"]

SQL = re.compile(
    r"\b(SELECT|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|VIEW|INDEX)|DROP\s+(TABLE|VIEW)|"
    r"ALTER\s+TABLE|ATTACH|COPY|PRAGMA|WHERE|ORDER\s+BY|GROUP\s+BY|LIMIT|DESCRIBE)\b|\bselect\b.*\bfrom\b",
    re.S,
)
# method calls whose first argument is SQL, and the app's helpers that take SQL at a position
SINK_METHODS = {"execute", "executemany", "sql", "query", "exec_driver_sql"}
SINK_FUNCTIONS = {"text": 0, "query": 1, "_cached_query": 2}

# (file, function): why it is safe. Every other site that builds SQL or passes a non-constant to a query fails.
REVIEWED = {
    ("backend/serving/log.py", ""): "REQUESTS_SQL interpolates two module constants (the choices' JSON shape, SERVED)",
    ("backend/serving/log.py", "served_log"): "runs REQUESTS_SQL, a module constant",
    ("app_pages/_store.py", "query"): "passes its caller's SQL to the cache (callers pass constants)",
    ("app_pages/_store.py", "_cached_query"): "passes through the SQL of `query`, whose callers pass constants",
    ("store/store.py", "Store.query"): "passes through its caller's SQL (constants; values are parameters)",
    ("store/store.py", "Store.connect"): "view and column names from store.schema.TABLES / READ_AS, types from a map",
    ("store/store.py", "_shard_columns"): "a view name built from a TABLES key",
    ("store/readonly.py", "_read_once"): "`ttc sql`: raw SQL on purpose, one read statement, no file access",
    ("store/maintenance.py", "_merge"): "file paths escaped by _sql_str; columns from TABLES",
    ("store/maintenance.py", "_merge.write"): "columns from TABLES, sort keys from SORT",
    ("store/maintenance.py", "check"): "file paths escaped by _sql_str; key columns from KEYS",
    ("backend/metrics/pools.py", "_read_tables"): "WHERE clauses chosen from constants; every value a $parameter",
    ("backend/metrics/quality.py", "data_quality"): "WHERE clauses and group keys chosen from constants; every value a "
    "$parameter (the bins' keys and levels too)",
    ("backend/metrics/quality.py", "bins_by_key"): "a constant key expression; every value a $parameter",
    ("store/views.py", ""): "the suggestion rule from the module's numeric constants",
    ("store/views.py", "quality_sql"): "group keys, source and caps given by its callers as constants",
    ("store/leases.py", "take"): "a constant statement per catalog dialect (row locks differ); values are :params",
    ("store/leases.py", "next_claimable"): "a constant statement per catalog dialect (SKIP LOCKED); values are :params",
    ("backend/execution/allocation.py", ""): "STATE_SQL interpolates the constant ANSWER_SQL; values are ? parameters",
    (
        "backend/execution/allocation.py",
        "states_and_spent",
    ): "runs the module constant STATE_SQL; values are ? parameters",
    (
        "backend/execution/allocation.py",
        "pool_questions",
    ): "interpolates the constant ANSWER_SQL; values are ? parameters",
    ("store/maintenance.py", "_with_question_keys"): "file paths escaped by _sql_str; the constant QUESTION_KEY_SQL",
    ("app_pages/_store.py", "sample_groups"): "interpolates the constant KEY_OR_LABEL_SQL",
    ("app_pages/_store.py", "default_runs"): "runs the constants RUN_QUESTIONS_SQL, ADAPTIVE_SQL; values are ? params",
    (
        "backend/metrics/pools.py",
        "",
    ): "SAMPLES_SQL, QUESTION_IDS_SQL interpolate the constant KEY_OR_LABEL_SQL; $n params",
    ("backend/importers/generic.py", "export_generic"): (
        "interpolates the constant column list and score_<index> aliases; run, model and verifier names are $n "
        "parameters, and a verifier's name becomes a column name only after the query, in Arrow"
    ),
    ("app_pages/_views.py", "samples_page"): "runs the module constant SAMPLES_SQL; values are $n parameters",
    ("app_pages/_views.py", "question_choices"): "runs the module constant QUESTION_IDS_SQL; values are $n parameters",
    ("backend/metrics/strategy_table.py", "verifier_flops_per_question"): "the constant KEY_OR_LABEL_SQL; $params",
    ("backend/run_selection.py", ""): "RUN_QUESTIONS_SQL interpolates the constant KEY_OR_LABEL_SQL",
    ("backend/run_selection.py", "default_runs_of"): "runs the module constant RUN_QUESTIONS_SQL and a fixed query",
}


def _text(node: ast.AST) -> str | None:
    """The literal text of a string constant or f-string ({} for each interpolation)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def _is_sql(node: ast.AST) -> bool:
    text = _text(node)
    return text is not None and bool(SQL.search(text))


def _constant_sql(node: ast.AST, constants: set[str]) -> bool:
    """A string literal, a module-level UPPER_CASE constant, or SQLAlchemy's text() of a literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return True
    if isinstance(node, ast.Name) and node.id in constants:
        return True
    return (
        isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "text"
        and len(node.args) == 1
        and _constant_sql(node.args[0], constants)
    )


def unsafe_sites(path: Path) -> set[tuple[str, str, str]]:
    """(file, function, what) of every site in `path` that builds SQL from pieces or queries with a non-constant."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    rel = path.relative_to(ROOT).as_posix()
    constants = {
        t.id
        for n in tree.body
        if isinstance(n, ast.Assign) and _text(n.value) is not None and isinstance(n.value, ast.Constant)
        for t in n.targets
        if isinstance(t, ast.Name) and t.id.isupper()
    }
    found: set[tuple[str, str, str]] = set()

    def visit(node: ast.AST, scope: str, in_raise: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner, raising = scope, in_raise or isinstance(child, ast.Raise)
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                inner = f"{scope}.{child.name}" if scope else child.name
            if not raising:  # an exception's message may quote SQL for the user to type; it never runs
                if isinstance(child, ast.JoinedStr) and _is_sql(child):
                    found.add((rel, inner, "f-string"))
                elif isinstance(child, ast.BinOp) and isinstance(child.op, (ast.Mod, ast.Add)):
                    if _is_sql(child.left) or _is_sql(child.right):
                        found.add((rel, inner, "% or +"))
                elif (
                    isinstance(child, ast.Call)
                    and isinstance(child.func, ast.Attribute)
                    and child.func.attr == "format"
                    and _is_sql(child.func.value)
                ):
                    found.add((rel, inner, ".format"))
            if isinstance(child, ast.Call):
                f = child.func
                pos = 0 if isinstance(f, ast.Attribute) and f.attr in SINK_METHODS else None
                if isinstance(f, ast.Name):
                    pos = SINK_FUNCTIONS.get(f.id)
                if pos is not None and len(child.args) > pos and not _constant_sql(child.args[pos], constants):
                    found.add((rel, inner, "query of a non-constant"))
            visit(child, inner, raising)

    visit(tree, "", False)
    return found


def all_unsafe_sites() -> set[tuple[str, str, str]]:
    out: set[tuple[str, str, str]] = set()
    for entry in SOURCES:
        p = ROOT / entry
        for f in [p] if p.is_file() else sorted(p.rglob("*.py")):
            out |= unsafe_sites(f)
    return out


def test_no_sql_is_assembled_from_user_input():
    sites = all_unsafe_sites()
    unreviewed = sorted(s for s in sites if s[:2] not in REVIEWED)
    assert not unreviewed, (
        "SQL built from pieces or a query of a non-constant: bind values as parameters (DuckDB ?/$name, "
        f"SQLAlchemy :name), or review the site and list it in REVIEWED: {unreviewed}"
    )
    stale = sorted(set(REVIEWED) - {s[:2] for s in sites})
    assert not stale, f"REVIEWED lists sites that no longer build SQL; remove them: {stale}"


@pytest.mark.parametrize(
    "code",
    [
        "con.execute(f\"SELECT * FROM samples WHERE run_id = '{run_id}'\")",
        "con.execute(\"SELECT * FROM samples WHERE model = '%s'\" % model)",
        'store.query("SELECT * FROM samples WHERE model = \'" + model + "\'")',
        'con.sql("DELETE FROM runs WHERE run_id = {}".format(run_id))',
        "sql = build(); con.execute(sql)",
        'query(store, f"SELECT {col} FROM samples")',
    ],
)
def test_the_check_finds_unsafe_sql(tmp_path, monkeypatch, code):
    """The check is not vacuous: each classic mistake in a new module is found."""
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    module = tmp_path / "mod.py"
    module.write_text(f"def handler(con, store, run_id, model, col, build):\n    {code}\n")
    assert {site[:2] for site in unsafe_sites(module)} == {("mod.py", "handler")}


def test_the_check_passes_constants_and_parameters(tmp_path, monkeypatch):
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    module = tmp_path / "ok.py"
    module.write_text(
        'SQL = "SELECT * FROM samples WHERE run_id = ?"\n'
        "def handler(con, run_id, db, text):\n"
        "    con.execute(SQL, [run_id])\n"
        '    con.execute("SELECT count(*) FROM samples WHERE model = $m", {"m": run_id})\n'
        '    db.execute(text("UPDATE runs SET status = :s WHERE run_id = :r"), {"s": "x", "r": run_id})\n'
        "    raise ValueError(f\"no run {run_id!r}; try `ttc sql 'SELECT run_id FROM runs'`\")\n"
    )
    assert unsafe_sites(module) == set()


# ---- `ttc sql`: raw SQL, read-only ------------------------------------------------------------------------------
WRITES = {
    "copy out": ("COPY (SELECT * FROM runs) TO '{tmp}/leak.csv'", "SQL: COPY is not a read statement"),
    "attach the catalog": ("ATTACH '{store}/catalog.sqlite' AS cat", "SQL: ATTACH is not a read statement"),
    "drop": ("DROP TABLE runs", "SQL: DROP is not a read statement"),
    "insert": ("INSERT INTO runs (run_id) VALUES ('x')", "SQL: INSERT is not a read statement"),
    "create": ("CREATE TABLE t AS SELECT 1", "SQL: CREATE is not a read statement"),
    "set": ("SET enable_external_access = true", "SQL: SET is not a read statement"),
    "install": ("INSTALL httpfs", "SQL: LOAD is not a read statement"),
    "pragma": ("PRAGMA database_list", "SQL: PRAGMA is not a read statement"),
    "stacked": ("SELECT 1; DROP TABLE runs", "SQL: 2 statements"),
    "empty": ("  ", "SQL: the query is empty"),
    "read a file": ("SELECT * FROM read_csv('/etc/passwd')", "query failed: Permission Error"),
    "read another parquet": ("SELECT * FROM read_parquet('{tmp}/none.parquet')", "query failed: Permission Error"),
}


@pytest.fixture
def small_store(tmp_path) -> Path:
    from bench.synthetic_store import make_synthetic_store

    root = tmp_path / "store"
    make_synthetic_store(root, n_questions=4, n_samples=2, models=("gemma-3-270m",), seed=3)
    return root


def _state(root: Path) -> tuple:
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.name.endswith(("-wal", "-shm")))
    return files, Store.open(root, create=False).runs_arrow().to_pylist()


@pytest.mark.parametrize("case", list(WRITES))
def test_ttc_sql_refuses_all_but_one_read(case, small_store, tmp_path, capsys):
    query, expected = WRITES[case]
    query = query.format(tmp=tmp_path, store=small_store)
    before = _state(small_store)
    assert main(["sql", "--store", str(small_store), query]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {expected}"), err
    if expected.startswith("SQL:"):
        assert "allowed: one read-only query: SELECT" in err
    assert _state(small_store) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]  # no file written next to it


@pytest.mark.parametrize("query", ["SELECT count(*) AS n FROM samples", "FROM runs SELECT run_id", "DESCRIBE samples"])
def test_ttc_sql_reads(query, small_store, capsys):
    assert main(["sql", "--store", str(small_store), query]) == 0
    assert capsys.readouterr().out.strip()


def test_a_quote_in_the_store_path_is_data_not_sql(tmp_path, capsys):
    """Shard paths reach DuckDB as values: a store under O'Brien's home reads like any other."""
    from bench.synthetic_store import make_synthetic_store

    root = tmp_path / "o'brien" / "store"
    make_synthetic_store(root, n_questions=2, n_samples=2, models=("gemma-3-270m",), seed=4)
    assert main(["sql", "--store", str(root), "SELECT count(*) AS n FROM samples"]) == 0
    assert capsys.readouterr().out.split() == ["n", "4"]
