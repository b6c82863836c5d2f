"""`ttc`: the command line. Every TtcError is rendered here as one line on stderr with exit code 2."""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path
from typing import NoReturn

from backend.errors import SpecError, StoreError, TtcError


def _cmd_run(args) -> int:
    from tqdm import tqdm

    from backend.config import load_spec
    from backend.execution.execute import execute
    from backend.execution.sampling import prepare_run
    from store import Store

    spec = load_spec(args.spec)
    prepared = prepare_run(spec)  # validates everything before the store is created or touched
    store = Store.open(args.store, catalog=args.catalog)
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
    _print_quality(store, [result["run_id"]], summary=True)
    return 0


def _print_quality(store, runs, *, models=None, dataset=None, bins=None, threshold=None, summary=False) -> None:
    """The data-quality figures of these runs' samples (backend/metrics/quality.py): the one-line summary on stdout
    (`ttc run`), or one stderr line per group (`ttc compute-optimal`: stdout stays CSV), then each warning on
    stderr."""
    from backend.metrics.quality import THRESHOLD, data_quality

    con = store.connect()
    try:
        q = data_quality(
            con,
            runs,
            models=models,
            dataset=dataset,
            bins=bins,
            threshold=THRESHOLD if threshold is None else threshold,
        )
    finally:
        con.close()
    if q.table.empty:
        return
    if summary:
        print(q.summary())
    else:
        for line in q.lines():
            print(f"quality: {line}", file=sys.stderr)
    for w in q.warnings:
        for line in w.replace("**", "").splitlines():  # every line prefixed: stderr's indented lines are the study's
            print(f"warning: {line}", file=sys.stderr)


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
        from backend.tasks.reasoning_gym_task import config_fields, gym_datasets

        for name in sorted(gym_datasets()):
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

    for name, entry in STRATEGIES.items():
        print(f"{name}: {entry.help}" + ("" if entry.needs_verifier else " (no verifier needed)"))
        for row in param_table(name):
            print(f"  {row['name']} = {row['default']!r}  [{row['allowed']}]  {row['help']}")
    return _cmd_verifiers(args)


def _cmd_sql(args) -> int:
    from store import Store
    from store.readonly import read_only_query

    store = Store.open(args.store, create=False, catalog=args.catalog)
    df = read_only_query(store, args.query)  # raw SQL on purpose: one read statement, no file access beyond shards
    df.to_csv(sys.stdout, index=False)
    return 0


def _cmd_compute_optimal(args) -> int:
    from backend.metrics.quality import bins_by_key, check_threshold
    from backend.report import check_study_arguments, open_study
    from store import Store

    check_study_arguments(args.n_bins, args.band_boot)
    if args.quality_threshold is not None:
        check_threshold(args.quality_threshold, "--quality-threshold")
    store = Store.open(args.store, create=False, catalog=args.catalog)
    con = store.connect()
    try:
        opened = open_study(
            con,
            store.root,
            **_study_options(args),
            on_left_out=_note_left_out,
        )
        study = opened.study
        bins = bins_by_key(con, list(opened.runs), study.model, study.table.question_ids, study.bins.level)
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
    print(study.held_out, file=sys.stderr)
    if study.band is not None:
        print(
            f"cv_lo/cv_hi, gap_lo/gap_hi: {study.band.confidence:.0%} bootstrap band over questions ({study.band.n_boot} "
            "resamples within each bin's halves, the choice re-made on each; the bins are the full data's)",
            file=sys.stderr,
        )
    for note in study.notes:
        print(f"note: {note}", file=sys.stderr)
    _print_quality(store, list(opened.runs), models=[study.model], bins=bins, threshold=args.quality_threshold)
    (study.cells_by_bin() if args.cells else study.report()).to_csv(sys.stdout, index=False)
    return 0


def _cmd_report(args) -> int:
    from backend.report import marked_sections, refresh

    if args.refresh and args.output is not None:
        raise SpecError("--output", "with --refresh", "one of them: -o writes a study's HTML, --refresh rewrites files")
    if args.refresh:
        for path in args.refresh:
            file = Path(path)
            if not file.is_file():
                raise SpecError(
                    "--refresh", f"{path!r} is not a file", "Markdown files holding `<!-- ttc report ... -->` markers"
                )
            text = file.read_text()
            if not marked_sections(text):
                raise SpecError("--refresh", f"{path} has no `<!-- ttc report ... -->` marker", "a file with markers")
            folder = file.resolve().parent
            new = refresh(text, partial(_marker_body, folder=folder))
            if new != text:
                file.write_text(new)
            print(
                f"{path}: {len(marked_sections(text))} section(s) {'rewritten' if new != text else 'unchanged'}",
                file=sys.stderr,
            )
        return 0
    if args.output is not None:
        return _write_html_report(args)
    sys.stdout.write(_report_body(args))
    return 0


def _write_html_report(args: argparse.Namespace) -> int:
    """`ttc report -o FILE`: the study as one self-contained HTML file, written whole or not at all."""
    if args.bench_output is not None:
        raise SpecError("--output", "with --bench-output", "an HTML report of a study (drop --bench-output)")
    from backend.report import check_study_arguments
    from backend.report_html import build_report
    from store import Store

    check_study_arguments(args.n_bins, args.band_boot)
    out = Path(args.output)
    if not out.parent.is_dir():
        raise SpecError("--output", f"{out.parent} is not a folder", "a file path in an existing folder")
    store = Store.open(args.store, create=False, catalog=args.catalog)
    con = store.connect()
    try:
        text = build_report(
            con,
            store.root,
            **_study_options(args),
            on_left_out=_note_left_out,
        )
    finally:
        con.close()
    part = out.with_name(out.name + ".part")
    part.write_text(text, encoding="utf-8")
    part.replace(out)
    print(f"{out}: study report written ({len(text.encode()) / 1e6:.1f} MB, self-contained HTML)", file=sys.stderr)
    return 0


def _marker_body(argv: list[str], folder: Path) -> str:
    """A marker's section, read from a temporary copy of the store it names: opening a store writes to it (the
    catalog's journal), and a committed study must stay byte-identical."""
    import shutil
    import tempfile

    from backend.report import resolve_store_argument

    args = _marker_arguments(resolve_store_argument(argv, folder))
    raw = _marker_arguments(argv)
    if raw.plan is not None:
        args.shown = (str(raw.plan), str(raw.store))
    if args.store is None:
        return _report_body(args)
    if not Path(args.store).is_dir():
        raise SpecError("<!-- ttc report ... -->", f"--store {args.store} is not a folder", "a store's folder")
    with tempfile.TemporaryDirectory(prefix="ttc-report-") as tmp:
        args.store = Path(shutil.copytree(args.store, Path(tmp) / "store"))
        return _report_body(args)


class _MarkerParser(argparse.ArgumentParser):
    """A marker's arguments are checked like the command line's, but a bad one is a typed error, not an exit."""

    def error(self, message: str) -> NoReturn:
        raise SpecError("<!-- ttc report ... -->", message, "the arguments of `ttc report` (see ttc report --help)")


def _marker_arguments(argv: list[str]) -> argparse.Namespace:
    p = _MarkerParser(prog="ttc report", add_help=False)
    _report_arguments(p)
    return p.parse_args(argv)


def _report_arguments(p: argparse.ArgumentParser) -> None:
    _study_arguments(p)
    p.add_argument(
        "--bench-output",
        metavar="FILE",
        type=Path,
        default=None,
        help="instead of a study: the RESULT lines of a benchmark's stored output (bench/results/), as a code block",
    )
    p.add_argument(
        "--bench-whole",
        action="store_true",
        help="with --bench-output: every line of the stored output, not only its RESULT lines",
    )
    p.add_argument(
        "--plan",
        metavar="SPEC",
        type=Path,
        default=None,
        help="instead of a study: `ttc plan SPEC --pilot-store STORE` from --store's runs, as a code block",
    )


def _report_body(args: argparse.Namespace) -> str:
    """One study's Markdown from `ttc report`'s arguments (a marker's, or the command line's)."""
    if args.bench_output is not None:
        from backend.report import bench_output_markdown

        return bench_output_markdown(args.bench_output, whole=args.bench_whole)
    if args.plan is not None:
        return _plan_body(args)
    from backend.report import check_study_arguments, open_study, study_markdown, study_record
    from store import Store

    check_study_arguments(args.n_bins, args.band_boot)
    store = Store.open(args.store, create=False, catalog=args.catalog)
    con = store.connect()
    try:
        opened = open_study(
            con,
            store.root,
            **_study_options(args),
            on_left_out=_note_left_out,
        )
        record = study_record(con, opened.runs, opened.study.model)
    finally:
        con.close()
    return study_markdown(opened, record)


def _plan_body(args: argparse.Namespace) -> str:
    """`ttc plan` from a stored study's runs as a Markdown code block, headed by the command a reader can re-run
    (the paths as the marker or the command line gave them)."""
    from backend.planning import plan_spec

    if args.store is None:
        raise SpecError("--plan", "without --store", "--store DIR: the study whose runs are the pilot")
    if not Path(args.plan).is_file():
        raise SpecError("--plan", f"{args.plan} is not a file", "a YAML run spec (see examples/)")
    shown = getattr(args, "shown", None) or (str(args.plan), str(args.store))
    text = plan_spec(args.plan, args.store).text()
    return f"```\n$ ttc plan {shown[0]} --pilot-store {shown[1]}\n{text}\n```\n"


def _cmd_plan(args) -> int:
    from tqdm import tqdm

    from backend.planning import plan_spec

    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="sample", desc="pilot", disable=args.quiet, file=sys.stderr)
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        result = plan_spec(
            args.spec,
            args.pilot_store,
            keep_pilot=args.keep_pilot,
            progress=progress,
            questions=args.pilot_questions,
            samples=args.pilot_samples,
            max_tokens=args.pilot_max_tokens,
        )
    finally:
        if bar is not None:
            bar.close()
    print(result.to_json() if args.json else result.text())
    return 0


def _cmd_worker(args) -> int:
    import threading

    from backend.errors import WorkerError
    from backend.execution.workers import install_signal_stop, worker_loop
    from store import Store

    if args.action is not None:
        if args.once:
            raise WorkerError(
                f"--once: only for running a worker (ttc worker --once), not with `ttc worker {args.action}`"
            )
        return _worker_status(args) if args.action == "status" else _worker_stop(args)
    store = Store.open(args.store, catalog=args.catalog)
    stop = threading.Event()
    install_signal_stop(stop)
    n = worker_loop(store, once=args.once, stop=stop, ray_address=args.ray)
    print(f"worker handled {n} run(s)", file=sys.stderr)
    return 0


def _ago(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    return f"{s // 60} min" if s < 7200 else f"{s // 3600} h" if s < 172800 else f"{s // 86400} d"


def _doing(w) -> str:
    if w.current_run_id is None:
        return "idle"
    return f"{w.current_run_id} ({w.run_name or '?'}, {w.run_status or 'unknown'})"


def _worker_status(args) -> int:
    """`ttc worker status`: the live workers as a table, then briefly the ones that stopped or were lost."""
    from datetime import UTC, datetime

    from backend.execution.workers import worker_table
    from store import Store

    store = Store.open(args.store, create=False, catalog=args.catalog)
    table = worker_table(store)
    live = [w for w in table if w.live]
    now = datetime.now(UTC)
    if not live:
        print(f"no live worker for {store.root} (start one: ttc worker --store {store.root}, or ttc dashboard)")
    else:
        rows = [("WORKER", "PID", "HOST", "RUN", "HEARTBEAT", "STARTED")] + [
            (
                w.worker_id,
                str(w.pid),
                w.host,
                _doing(w),
                f"{w.heartbeat_age_s:.0f} s ago",
                f"{w.started_at[:19].replace('T', ' ')} UTC "
                f"({_ago((now - datetime.fromisoformat(w.started_at)).total_seconds())} ago)",
            )
            for w in live
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        print(f"{len(live)} live worker(s) for {store.root}:")
        for r in rows:
            print("  " + "  ".join(c.ljust(n) for c, n in zip(r, widths)).rstrip())
    gone = [w for w in table if not w.live]
    if gone:
        print(f"not running: {len(gone)} (most recent first)")
        for w in gone[:5]:
            if w.stopped_at:
                why = f"stopped {_ago((now - datetime.fromisoformat(w.stopped_at)).total_seconds())} ago"
            else:
                why = f"lost (crashed or killed): no heartbeat for {_ago(w.heartbeat_age_s)}"
                why += f", was running {w.current_run_id}" if w.current_run_id else ""
            print(f"  {w.worker_id}  pid {w.pid} on {w.host}: {why}")
        if len(gone) > 5:
            print(f"  ... and {len(gone) - 5} older")
    return 0


def _worker_stop(args) -> int:
    """`ttc worker stop`: SIGTERM the chosen live workers of this host and wait until they are gone."""
    from backend.errors import WorkerError
    from backend.execution.workers import stop_workers, workers_to_stop
    from store import Store

    if args.wait < 0:
        raise WorkerError(f"--wait: {args.wait} is negative; allowed: seconds >= 0 (0: do not wait)")
    store = Store.open(args.store, create=False, catalog=args.catalog)
    chosen, elsewhere = workers_to_stop(store, args.targets, args.all)
    for w in elsewhere:
        print(f"not stopped: {w.worker_id} runs on host {w.host}; stop it there", file=sys.stderr)
    if not chosen:
        print(f"no live worker for {store.root}: nothing to stop")
        return 0
    running = stop_workers(store, chosen, args.wait)
    for w in chosen:
        if w in running:
            if args.wait:
                print(
                    f"worker {w.worker_id} (pid {w.pid}) is still finishing after {args.wait:g} s; it stops after "
                    f"its current samples (wait longer: --wait S)",
                    file=sys.stderr,
                )
            else:
                print(f"asked worker {w.worker_id} (pid {w.pid}) to stop")
            continue
        line = f"stopped worker {w.worker_id} (pid {w.pid})"
        if w.current_run_id:
            run = (store.get_run(w.current_run_id) or {}).get("status")
            line += f"; its run {w.current_run_id} is {run or 'unknown'}"
            line += " and resumes when a worker next runs" if run == "queued" else ""
        print(line)
    return 1 if running and args.wait else 0


def streamlit_command(port: int, headless: bool = False, expose: str | None = None) -> list[str]:
    """The dashboard's server: on 127.0.0.1 unless `expose` names an address, and no usage statistics. Given on the
    command line because Streamlit reads .streamlit/config.toml from the current directory only, and a user may
    start the dashboard from anywhere."""
    app = Path(__file__).resolve().parent.parent / "app.py"
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(port)]
    cmd += ["--server.address", expose or "127.0.0.1", "--browser.gatherUsageStats", "false"]
    if headless:
        cmd += ["--server.headless", "true"]
    return cmd


def _cmd_dashboard(args) -> int:
    """Streamlit runs as a child, not exec'd, so that after it exits the user learns that the worker this command
    made sure of keeps running, and how to stop it."""
    import os
    import signal
    import subprocess

    from backend.execution.workers import ensure_worker, worker_table
    from store import Store

    store = Store.open(args.store, catalog=args.catalog)
    worker = None
    if not args.no_worker:
        start = ensure_worker(store)
        worker = start.worker
        print(
            f"worker {worker.worker_id} (pid {worker.pid}) "
            + ("started" if start.started else "already serves this store")
            + f"; its log: {store.root / 'worker.log'}",
            file=sys.stderr,
        )
    env = {**os.environ, "TTC_STORE": str(store.root), **store.catalog_env()}
    cmd = streamlit_command(args.port, args.headless, args.expose)
    if args.expose:
        print(
            f"warning: the dashboard listens on {args.expose}:{args.port}; whoever reaches that address can read "
            "the store and queue runs (there is no login)",
            file=sys.stderr,
        )
    print(
        f"dashboard: http://localhost:{args.port}  (store: {store.root}; Ctrl-C to stop)", file=sys.stderr, flush=True
    )
    child = subprocess.Popen(cmd, env=env)

    def forward(sig, _frame) -> None:  # a Ctrl-C reaches both; a signal sent to this process alone reaches it here
        try:
            child.send_signal(sig)
        except ProcessLookupError:
            pass

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        rc = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if worker is not None and any(w.live and w.worker_id == worker.worker_id for w in worker_table(store)):
        print(
            f"dashboard stopped; worker {worker.worker_id} (pid {worker.pid}) keeps running queued runs. "
            f"Stop it with: ttc worker stop --store {store.root}",
            file=sys.stderr,
        )
    return rc if rc >= 0 else 128 - rc


def _cmd_store(args) -> int:
    """`ttc store check|repair|compact`: keep a long-lived store intact and fast (store/maintenance.py)."""
    import time

    from store import Store
    from store.maintenance import GRACE_S, check, compact_run, finished_runs, purge_replaced, repair

    store = Store.open(args.store, create=False, catalog=args.catalog)
    if args.action == "check":
        report = check(store)
        for problem in report.problems:
            print(problem)
        state = "healthy" if report.healthy else f"{len(report.problems)} problem(s)"
        print(
            f"store {store.root}: {report.shards} shards, {report.rows} rows, {state}"
            + (f"; {report.replaced_pending} replaced shards await removal" if report.replaced_pending else ""),
            file=sys.stderr,
        )
        if not report.healthy:
            print(f"repair with: ttc store repair --store {store.root}", file=sys.stderr)
        return 0 if report.healthy else 1
    if args.action == "repair":
        done = repair(store)
        for rel in done.quarantined:
            print(f"quarantined {rel} -> {store.root / 'quarantine' / rel}")
        for run_id in done.requeued:
            print(f"re-queued run {run_id}: a worker (or `ttc run` of its spec) regenerates what was lost")
        for problem in done.unrepaired:
            print(f"not repaired: {problem}")
        print(
            f"store {store.root}: {len(done.quarantined)} shard(s) quarantined, {done.temps_removed} stale temp "
            f"file(s) and {done.replaced_removed} replaced shard(s) removed",
            file=sys.stderr,
        )
        return 1 if done.unrepaired else 0
    runs = args.run or finished_runs(store)
    for run_id in runs:
        if store.get_run(run_id) is None:
            raise StoreError(
                f"--run: no run {run_id!r} in {store.root}; allowed: a run id from `ttc sql 'SELECT run_id FROM runs'`"
            )
    merged = False
    for run_id in runs:
        result = compact_run(store, run_id)
        merged |= bool(result.merged)
        print(result)
    if merged and not args.no_wait:
        print(f"waiting {GRACE_S:.0f} s for readers of the replaced shards", file=sys.stderr, flush=True)
        time.sleep(GRACE_S)  # readers that listed the old shards just before the merge finish with them first
    removed = purge_replaced(store)
    print(f"removed {removed} replaced shard(s)", file=sys.stderr)
    return 0


def _cmd_import(args) -> int:
    """`ttc import FORMAT PATH...`: other tools' sample logs become a read-only run (backend/importers)."""
    from backend.importers.ingest import import_files, load_arch, load_options_file
    from backend.importers.tokens import open_tokenizer
    from store import Store

    arch = load_arch(args.params, args.arch)
    options = load_options_file(args.mapping)
    tokenizer = open_tokenizer(args.tokenizer) if args.tokenizer is not None else None
    store = Store.open(args.store, catalog=args.catalog)
    result = import_files(
        store, args.format, args.paths, name=args.run, model=args.model, options=options, arch=arch, tokenizer=tokenizer
    )
    print(result)
    return 0


def _cmd_export(args) -> int:
    """`ttc export --format generic RUN -o FILE`: a run's pool as what `ttc import generic` reads back."""
    from backend.importers.generic import export_generic
    from store import Store

    store = Store.open(args.store, create=False, catalog=args.catalog)
    if store.get_run(args.run_id) is None:
        raise StoreError(
            f"RUN: no run {args.run_id!r} in {store.root}; allowed: a run id from `ttc sql 'SELECT run_id FROM runs'`"
        )
    con = store.connect()
    try:
        models = [
            r[0] for r in con.execute("SELECT DISTINCT model FROM samples WHERE run_id = ?", [args.run_id]).fetchall()
        ]
        model = args.model or (models[0] if len(models) == 1 else None)
        if model is None or model not in models:
            raise StoreError(
                f"--model: {args.model or 'none given'} for run {args.run_id}; allowed: {', '.join(sorted(models))}"
            )
        rows = export_generic(con, args.run_id, model, args.output)
    finally:
        con.close()
    print(f"{rows} samples of run {args.run_id} ({model}) written to {args.output}", file=sys.stderr)
    return 0


def _store_arguments(p: argparse.ArgumentParser, suppress: bool = False) -> None:
    """--store and --catalog, the same on every command that opens a store (SUPPRESS: a sub-action's copy does not
    overwrite one given before the action)."""
    default = argparse.SUPPRESS if suppress else None
    p.add_argument(
        "--store",
        type=Path,
        default=default,
        help="store directory (default: $TTC_STORE or ~/.local/share/ttc-lab/store)",
    )
    p.add_argument(
        "--catalog",
        metavar="URL",
        default=default,
        help="the store's queue on a PostgreSQL server, postgresql://USER@HOST[:PORT]/DB (default: $TTC_CATALOG_URL, "
        "else what the store was created with; a new store: its own SQLite file). Password: PGPASSWORD or ~/.pgpass",
    )


def _note_left_out(run_id: str, why: str) -> None:
    print(f"note: run {run_id} left out ({why}); name it with --run to include it", file=sys.stderr)


def _study_options(args: argparse.Namespace) -> dict:
    """The study `_study_arguments` select, as backend.report.open_study's keywords (one place for all three users)."""
    return dict(
        runs=args.run,
        model=args.model,
        verifier=None if args.verifier == "none" else args.verifier,
        bins=args.bins,
        n_bins=args.n_bins,
        seed=args.seed,
        band_boot=args.band_boot,
    )


def _study_arguments(p: argparse.ArgumentParser) -> None:
    """What selects and bins a compute-optimal study: the same on `ttc compute-optimal`, `ttc report` and a report
    marker."""
    _store_arguments(p)
    p.add_argument(
        "--run",
        action="append",
        default=None,
        metavar="ID",
        help="a run id (repeat for several; default: the finished, non-adaptive runs of the newest run's questions)",
    )
    p.add_argument("--model", default=None, help="the model whose pool and searches to compare (default: the only one)")
    p.add_argument(
        "--bins",
        choices=["oracle", "predicted"],
        default="oracle",
        help="oracle: each question's pass@1 over all its pool's samples; predicted: its mean verifier score over "
        "them (charged to no budget). Bins use every question; the 2-fold CV holds out the choice of configuration",
    )
    p.add_argument("--n-bins", type=int, default=5, help="difficulty bins (fewer when the questions cannot fill them)")
    p.add_argument(
        "--verifier",
        default="auto",
        help="scores best-of-N uses: a verifier's name, auto (the first that scored the pool) or none (majority is the baseline)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the cross-validation folds and vote resampling")
    p.add_argument(
        "--band-boot",
        type=int,
        default=None,
        metavar="N",
        help="bootstrap resamples of the questions for the cv_lo/cv_hi and gap_lo/gap_hi columns (95%%; the "
        "cross-validated choice re-made on each; default: the page's; 0: no band)",
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ttc", description="ttc-lab: how should I spend inference compute?")
    sub = p.add_subparsers(dest="command", required=True)
    _add_run(sub)
    _add_listings(sub)
    _add_sql(sub)
    _add_compute_optimal(sub)
    _add_report(sub)
    _add_plan(sub)
    _add_worker(sub)
    _add_dashboard(sub)
    _add_import(sub)
    _add_store(sub)
    _add_policy(sub)
    _add_serve(sub)
    return p


def _add_run(sub) -> None:
    """`ttc run SPEC`."""
    r = sub.add_parser("run", help="run a spec: generate and grade every sample into the store")
    r.add_argument("spec", help="YAML run spec (see examples/)")
    _store_arguments(r)
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(fn=_cmd_run)


def _add_listings(sub) -> None:
    """The listings: models, tasks, strategies, engines, verifiers."""
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


def _add_sql(sub) -> None:
    """`ttc sql QUERY`."""
    s = sub.add_parser("sql", help="run a SQL query on the store, print CSV")
    s.add_argument("query")
    _store_arguments(s)
    s.set_defaults(fn=_cmd_sql)


def _add_compute_optimal(sub) -> None:
    """`ttc compute-optimal`."""
    co = sub.add_parser(
        "compute-optimal",
        help="the best configuration per difficulty bin and FLOP budget, as CSV (the Compute-optimal page's table)",
    )
    _study_arguments(co)
    co.add_argument(
        "--cells",
        action="store_true",
        help="print every configuration's accuracy per bin × budget instead of the choice",
    )
    co.add_argument(
        "--quality-threshold",
        type=float,
        default=None,
        metavar="SHARE",
        help="warn (on stderr) where the share of samples cut at max_tokens, finished without an answer or not "
        "graded passes this in a difficulty bin (default: the dashboard's, 0.1)",
    )
    co.set_defaults(fn=_cmd_compute_optimal)


def _add_report(sub) -> None:
    """`ttc report`."""
    rp = sub.add_parser(
        "report",
        help="a study's figures as Markdown (its runs, data quality, headline comparison, choice per bin and budget); "
        "--refresh rewrites the `<!-- ttc report ... -->` sections of Markdown files from the stores they name",
    )
    _report_arguments(rp)
    rp.add_argument(
        "--refresh",
        nargs="+",
        metavar="FILE",
        default=None,
        help="re-render every marked section of these files (a marker's --store is relative to its file)",
    )
    rp.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        default=None,
        help="write the study as one self-contained HTML file (charts and tables, no network needed; prints to PDF)",
    )
    rp.set_defaults(fn=_cmd_report)


def _add_plan(sub) -> None:
    """`ttc plan SPEC`."""
    pl = sub.add_parser(
        "plan",
        help="size a study before running it: max_tokens, samples per question, questions needed, time and FLOPs",
    )
    pl.add_argument("spec", help="YAML run spec (see examples/)")
    pl.add_argument(
        "--pilot-store",
        type=Path,
        default=None,
        metavar="DIR",
        help="plan from the finished runs of this store (same task and model) instead of running a pilot",
    )
    pl.add_argument(
        "--keep-pilot",
        type=Path,
        default=None,
        metavar="DIR",
        help="run the pilot into this store and keep it (default: a temporary store)",
    )
    pl.add_argument("--pilot-questions", type=int, default=2, metavar="N", help="pilot questions per dataset")
    pl.add_argument("--pilot-samples", type=int, default=4, metavar="K", help="pilot samples per question")
    pl.add_argument(
        "--pilot-max-tokens", type=int, default=None, metavar="M", help="the pilot's cap (default: the spec's)"
    )
    pl.add_argument("--json", action="store_true", help="print the plan as JSON")
    pl.add_argument("--quiet", action="store_true", help="no progress bar")
    pl.set_defaults(fn=_cmd_plan)


def _add_worker(sub) -> None:
    """`ttc worker [status|stop]`."""
    w = sub.add_parser(
        "worker",
        help="claim and run queued runs (the dashboard submits them); `status` / `stop` show or stop live workers",
    )
    _store_arguments(w)
    w.add_argument("--once", action="store_true", help="exit when the queue is empty")
    w.add_argument(
        "--ray",
        metavar="auto|ADDRESS",
        default=None,
        help="generate samples on engine replicas of this Ray cluster (auto: the one this machine belongs to); "
        "without it a spec with engine.replicas > 1 starts a local Ray cluster",
    )
    w.set_defaults(fn=_cmd_worker, action=None)
    # `ttc worker --store DIR --once` stays valid: the action is optional; the actions' --store does not overwrite
    # one given before the action (SUPPRESS leaves it unset)
    wa = w.add_subparsers(dest="action", metavar="[status|stop]")
    ws = wa.add_parser("status", help="live workers: their run and heartbeat; then the stopped or lost ones")
    _store_arguments(ws, suppress=True)
    wt = wa.add_parser("stop", help="stop live workers of this host (the run each holds is queued again)")
    _store_arguments(wt, suppress=True)
    wt.add_argument("targets", nargs="*", metavar="WORKER_ID|PID", help="default: the only live worker")
    wt.add_argument("--all", action="store_true", help="every live worker of this host")
    wt.add_argument("--wait", type=float, default=60.0, metavar="S", help="seconds to wait for them to exit (0: none)")


def _add_dashboard(sub) -> None:
    """`ttc dashboard`."""
    d = sub.add_parser("dashboard", help="start a worker (if none is alive) and the dashboard on http://localhost:PORT")
    _store_arguments(d)
    d.add_argument("--port", type=int, default=8501)
    d.add_argument("--no-worker", action="store_true")
    d.add_argument("--headless", action="store_true", help="do not open a browser")
    d.add_argument(
        "--expose",
        metavar="ADDRESS",
        default=None,
        help="listen on ADDRESS (e.g. 0.0.0.0) instead of 127.0.0.1: an explicit opt-in, the dashboard has no login",
    )
    d.set_defaults(fn=_cmd_dashboard)


def _add_import(sub) -> None:
    """`ttc import FORMAT PATH...` and `ttc export RUN`."""
    from backend.importers import IMPORTERS

    im = sub.add_parser(
        "import",
        help="import other tools' sample logs as a read-only run (idempotent: the same files import once)",
    )
    im.add_argument("format", choices=list(IMPORTERS), help="; ".join(f"{n}: {e.help}" for n, e in IMPORTERS.items()))
    im.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    _store_arguments(im)
    im.add_argument("--run", default=None, metavar="NAME", help="the run's name (default: the format and first file)")
    im.add_argument("--model", default="imported", metavar="NAME", help="the model that wrote the samples")
    im.add_argument(
        "--params", type=int, default=None, metavar="N", help="its parameter count, to price FLOPs (2·N a token)"
    )
    im.add_argument(
        "--arch",
        type=Path,
        default=None,
        metavar="FILE",
        help="its architecture, to price FLOPs: a GGUF file, or YAML of n_params, n_layers, d_model, d_attn",
    )
    im.add_argument(
        "--tokenizer",
        default=None,
        metavar="NAME|PATH",
        help="recount the token counts the files lack with this tokenizer: a shipped model (ttc models), a GGUF "
        "file, or a Hugging Face tokenizer directory (needs tokenizers or transformers); without it they stay NULL",
    )
    im.add_argument(
        "--mapping",
        type=Path,
        default=None,
        metavar="FILE",
        help="the format's options (YAML/JSON); generic: the "
        "column mapping, layout and the values that count as correct",
    )
    im.set_defaults(fn=_cmd_import)
    ex = sub.add_parser("export", help="write a run's pool as a file `ttc import` reads back")
    ex.add_argument("run_id", metavar="RUN")
    ex.add_argument("--format", choices=["generic"], default="generic")
    ex.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help=".jsonl or .parquet")
    ex.add_argument("--model", default=None, help="the model whose samples (default: the run's only one)")
    _store_arguments(ex)
    ex.set_defaults(fn=_cmd_export)


def _add_store(sub) -> None:
    """`ttc store check|repair|compact`."""
    st = sub.add_parser("store", help="check, repair or compact a store")
    st.add_argument(
        "action",
        choices=["check", "repair", "compact"],
        help="check: read every shard and the catalog, exit 1 on a problem; repair: quarantine unreadable shards and "
        "re-queue their runs; compact: merge each finished run's shards into one file per table",
    )
    _store_arguments(st)
    st.add_argument("--run", action="append", default=None, metavar="ID", help="compact: only this run (repeatable)")
    st.add_argument(
        "--no-wait",
        action="store_true",
        help="compact: do not wait for readers before removing replaced shards (they go at the next compaction)",
    )
    st.set_defaults(fn=_cmd_store)


def _cmd_policy_freeze(args) -> int:
    from backend.report import check_study_arguments
    from backend.serving.policy import freeze_policy, write_policy
    from store import Store

    check_study_arguments(args.n_bins, args.band_boot)
    store = Store.open(args.store, create=False, catalog=args.catalog)
    con = store.connect()
    try:
        policy = freeze_policy(
            con,
            store.root,
            args.run,
            args.model,
            n_bins=args.n_bins,
            pilot_samples=args.pilot_samples,
            seed=args.seed,
            band_boot=args.band_boot,
        )
    finally:
        con.close()
    write_policy(policy, args.output)
    cells = sum(len(b.cells) for b in policy.bins)
    print(
        f"policy {policy.version}: {policy.model}, {len(policy.bins)} {policy.bins_kind} bins, {cells} cells -> "
        f"{args.output}",
        file=sys.stderr,
    )
    return 0


def _add_policy(sub) -> None:
    """`ttc policy freeze`."""
    po = sub.add_parser("policy", help="freeze a compute-optimal study into a policy that `ttc serve` applies")
    actions = po.add_subparsers(dest="action", required=True)
    fr = actions.add_parser(
        "freeze",
        help="per predicted-difficulty bin and FLOP budget, the cross-validated configuration, as JSON",
    )
    _store_arguments(fr)
    fr.add_argument("--run", action="append", default=None, metavar="ID", help="a run id of the study (repeatable)")
    fr.add_argument("--model", default=None, help="the model whose study to freeze (default: the only one)")
    fr.add_argument(
        "--n-bins", type=int, default=5, help="predicted-difficulty bins (fewer when the questions cannot fill them)"
    )
    fr.add_argument(
        "--pilot-samples",
        type=int,
        default=2,
        metavar="K",
        help="scored samples a served question's difficulty is predicted from (their cost is the request's)",
    )
    fr.add_argument("--seed", type=int, default=0, help="seed of the cross-validation folds and vote resampling")
    fr.add_argument(
        "--band-boot", type=int, default=None, metavar="N", help="bootstrap resamples of each cell's interval"
    )
    fr.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="the policy file to write")
    fr.set_defaults(fn=_cmd_policy_freeze)


def _cmd_serve(args) -> int:
    from backend.serving.http import serve
    from backend.serving.policy import load_policy
    from backend.serving.runtime import parse_budget

    default_budget = None  # the options first: a bad one loads nothing
    if args.default_budget is not None:
        default_budget = parse_budget(args.default_budget, "--default-budget")
    if args.concurrency is not None and args.concurrency < 1:
        raise SpecError("--concurrency", f"{args.concurrency} requests at once", "1 or more")
    policy = load_policy(args.policy)
    return serve(
        policy, args.store, args.catalog, args.host, args.port, args.concurrency, default_budget, args.reproducible
    )


def _add_serve(sub) -> None:
    """`ttc serve`."""
    se = sub.add_parser(
        "serve",
        help="answer OpenAI-style chat completions the way a frozen policy says, each request under its FLOP budget",
    )
    se.add_argument("--policy", type=Path, required=True, help="a file written by `ttc policy freeze`")
    _store_arguments(se)
    se.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    se.add_argument("--port", type=int, default=8000, help="port to bind")
    se.add_argument(
        "--default-budget",
        default=None,
        metavar="BUDGET",
        help="the budget of a request that gives none, in FLOPs ('2e12') or samples ('4 samples'; default: no cap)",
    )
    se.add_argument(
        "--concurrency",
        type=int,
        default=None,
        metavar="K",
        help="requests answered at once, sharing the engine (default: llama.cpp's slots; 1 on vLLM in-process)",
    )
    se.add_argument(
        "--reproducible",
        action="store_true",
        help="llama.cpp with one slot and no prompt cache: each answer is exactly what the request gets alone, "
        "whatever else is being answered (slower: no batching)",
    )
    se.set_defaults(fn=_cmd_serve)


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
