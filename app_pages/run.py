"""Run: build a run spec from a form, validate it through RunSpec, queue it, and watch the worker write."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app_pages import _charts as charts
from app_pages import _page as frame
from app_pages import _selection as sel
from app_pages import _store as stored
from backend.config import check_budget_samples, parse_budget_list, parse_spec
from backend.errors import SpecError, TtcError
from backend.execution.allocation import adaptive_runs, allocation_summary
from backend.execution.queue import cancel, progress, samples_kept, submit
from backend.execution.workers import ensure_worker, worker_table
from backend.models.registry import DEFAULT_MODEL, SHIPPED_MODELS, parts_installed
from store.catalog import SERVED

ACTIVE = ("queued", "running")


# ---- the catalog of choices (cached: importing reasoning-gym and probing part packages takes a moment) ----------
@st.cache_data(show_spinner=False)
def _installed_models() -> dict[str, bool]:
    return {name: parts_installed(m) for name, m in SHIPPED_MODELS.items()}


@st.cache_data(show_spinner=False)
def _rg_datasets() -> list[str]:
    from backend.tasks.reasoning_gym_task import gym_datasets

    return sorted(gym_datasets())


@st.cache_data(show_spinner=False)
def _rg_knobs(name: str) -> dict:
    """The dataset's difficulty knobs with reasoning-gym's defaults (the fields `config_fields` lists)."""
    from backend.tasks.reasoning_gym_task import config_fields, gym_datasets

    _, cls = gym_datasets()[name]
    out = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in config_fields(name):
        f = fields[key]
        if f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            value = f.default_factory()  # type: ignore[misc]
        else:
            continue
        out[key] = list(value) if isinstance(value, (tuple, set)) else value
    return json.loads(json.dumps(out, default=str))


@st.cache_resource(show_spinner="reading the model's architecture from its GGUF…")
def _arch(model: str):
    from backend.models.registry import resolve_model

    return resolve_model(model).arch


# ---- the form ---------------------------------------------------------------------------------------------------
# The form's widgets. Streamlit forgets a widget's value once a page without it has run, so the form keeps its
# values under a key no widget owns and gives them back before drawing (`_restore_form`); a new session (a reload)
# reads the URL, where the choices are mirrored. The models have their own key: the analysis pages' "models" is a
# selection of the store's models, and sharing it let each page overwrite the other's choice.
FORM_KEYS = frozenset(
    (
        "run_models", "gguf_paths", "suite", "datasets", "run_name", "spq", "temperature", "top_p", "max_tokens",
        "seed", "adaptive", "adaptive_budget", "adaptive_stop", "adaptive_level", "engine", "verifiers", "strategies",
        "budgets", "price_budgets",
    )
)  # fmt: skip
FORM_PREFIXES = ("rg_", "task_", "engine_", "verifier_", "strat_")  # the generated controls' keys
KEPT = "_run_form"


def _restore_form() -> None:
    for key, value in st.session_state.get(KEPT, {}).items():
        if key not in st.session_state:
            st.session_state[key] = value


def _remember_form() -> None:
    st.session_state[KEPT] = {
        k: v for k, v in st.session_state.items() if k in FORM_KEYS or str(k).startswith(FORM_PREFIXES)
    }


def _models_section() -> list[str]:
    installed = _installed_models()
    names = list(SHIPPED_MODELS)
    # The URL key is the widget's own, not the analysis pages' `models` (a model filter over stored runs).
    sel.from_url("run_models", [DEFAULT_MODEL], options=names, multi=True)
    chosen = st.multiselect(
        "Models",
        names,
        key="run_models",
        format_func=lambda n: n + ("" if installed.get(n) else " (not installed)"),
        help="Shipped GGUF models (ttc models). Add local .gguf files below.",
    )
    extra = st.text_input("Local .gguf paths (comma separated)", key="gguf_paths", placeholder="/models/my-model.gguf")
    return chosen + [p.strip() for p in extra.split(",") if p.strip()]


def _task_section(problems: list) -> dict:
    """The task suite: reasoning-gym gets its dataset picker; every other registered suite a form generated from its
    options model (so a suite registered in backend.tasks appears here untouched)."""
    from app_pages._options_form import options_controls
    from backend.tasks import TASKS

    kinds = list(TASKS)
    sel.from_url("suite", "reasoning_gym", options=kinds)
    kind = st.radio(
        "Task suite", kinds, key="suite", horizontal=True, help=TASKS[st.session_state.get("suite", kinds[0])].help
    )
    if kind != "reasoning_gym":
        return options_controls(TASKS[kind].options, f"task_{kind}", "task", problems, fixed={"kind": kind})
    all_sets = _rg_datasets()
    sel.from_url("datasets", ["basic_arithmetic"], options=all_sets, multi=True)
    names = st.multiselect(
        "reasoning-gym datasets",
        all_sets,
        key="datasets",
        help="Mix several configurations for a spread of difficulty; each gets its own level label.",
    )
    datasets = []
    for i, name in enumerate(names):
        with st.container(border=True):
            st.markdown(f"**{name}** — difficulty knobs (`ttc tasks --all` lists them)")
            c1, c2, c3 = st.columns([1, 1, 4])
            size = c1.number_input("Questions", value=5, step=1, key=f"rg_size_{name}")
            level = c2.number_input("Level label", value=float(i), step=1.0, key=f"rg_level_{name}")
            raw = c3.text_area("Config (JSON)", value=json.dumps(_rg_knobs(name)), key=f"rg_config_{name}", height=90)
            config = _parse_config(raw, f"task.datasets[{i}].config", problems)
            datasets.append({"name": name, "size": int(size), "config": config, "level": float(level)})
    return {"kind": "reasoning_gym", "datasets": datasets}


def _parse_config(raw: str, field: str, problems: list) -> dict:
    """A knob box's JSON; a malformed one is shown where it is typed and blocks queueing."""
    try:
        config = json.loads(raw) if raw.strip() else {}
        if not isinstance(config, dict):
            raise SpecError(field, "must be a JSON object", '{"knob": value, ...}')
    except json.JSONDecodeError as e:
        err = SpecError(field, f"not valid JSON ({e.msg} at column {e.colno})", "a JSON object of the dataset's knobs")
    except SpecError as e:
        err = e
    else:
        return config
    frame.render_error(err)
    problems.append(err)
    return {}


def _sampling_section() -> dict:
    sel.from_url("run_name", "dashboard-run")
    sel.from_url("spq", 8, cast=int)
    sel.from_url("temperature", 0.8, cast=float)
    sel.from_url("top_p", 1.0, cast=float)
    sel.from_url("max_tokens", 256, cast=int)
    sel.from_url("seed", 0, cast=int)
    c1, c2, c3, c4 = st.columns(4)
    name = c1.text_input("Run name", key="run_name")
    spq = c2.number_input(
        "Samples per question", step=1, key="spq", help="The pool size N: every k <= N is analysed from it."
    )
    temperature = c3.number_input("Temperature", step=0.1, key="temperature")
    top_p = c4.number_input("top_p", step=0.05, key="top_p")
    c5, c6 = st.columns(2)
    max_tokens = c5.number_input("Max tokens", step=16, key="max_tokens")
    seed = c6.number_input("Seed", step=1, key="seed")
    out = {
        "name": name,
        "samples_per_question": int(spq),
        "temperature": float(temperature),
        "top_p": float(top_p),
        "max_tokens": int(max_tokens),
        "seed": int(seed),
    }
    if st.toggle(
        "Adaptive: spend one total budget where it pays",
        key="adaptive",
        help="Samples per question becomes the cap: a first round for every question, then more samples where the "
        "answer is still unsettled, none once it is settled, one per round where it looks hopeless.",
    ):
        a1, a2, a3 = st.columns(3)
        mean = a1.number_input(
            "Mean samples per question", value=4.0, step=1.0, key="adaptive_budget", help="the total budget / questions"
        )
        stop = a2.selectbox("Stop a question when", ["beta", "supermajority"], key="adaptive_stop")
        level = a3.number_input(
            "confidence (beta) / share (supermajority)", value=0.95 if stop == "beta" else 0.75, key="adaptive_level"
        )
        rule = {"confidence": float(level)} if stop == "beta" else {"supermajority": float(level)}
        out["adaptive"] = {"total_budget": float(mean), "per_question": True, "stop": stop, **rule}
    return out


def _engine_section(problems: list) -> dict:
    """The engine: one of the registry's, with a form generated from its options model."""
    from app_pages._options_form import options_controls
    from backend.engines import DEFAULT_ENGINE, ENGINES

    kinds = list(ENGINES)
    sel.from_url("engine", DEFAULT_ENGINE, options=kinds)
    kind = st.radio(
        "Engine",
        kinds,
        key="engine",
        horizontal=True,
        format_func=lambda k: k + (" (GPU)" if ENGINES[k].needs_gpu else ""),
        help="; ".join(f"{k}: {e.help}" for k, e in ENGINES.items()),
    )
    return {
        "engine": options_controls(ENGINES[kind].options, f"engine_{kind}", "engine", problems, fixed={"kind": kind})
    }


def _strategies_section(problems: list) -> dict:
    """Controls built from the strategy registry's parameter table (so a new strategy appears here untouched)."""
    from app_pages._options_form import strategy_controls
    from backend.strategies import STRATEGIES

    chosen = strategy_controls(STRATEGIES, problems)
    return {"strategies": chosen} if chosen else {}


@st.cache_resource(show_spinner="loading the model's tokenizer…")
def _token_counter(model: str):
    from backend.models.registry import resolve_model
    from backend.pricing import model_token_counter

    return model_token_counter(resolve_model(model))


@st.cache_data(show_spinner="counting the questions' prompt tokens…")
def _prompt_tokens(model: str, task_json: str, seed: int) -> list[float]:
    from backend.models.registry import resolve_model
    from backend.pricing import task_prompt_tokens

    return task_prompt_tokens(json.loads(task_json), seed, resolve_model(model), _token_counter(model)).tolist()


def _budget_section(models: list[str], task: dict, max_tokens: int, seed: int) -> list[float]:
    """What a FLOP budget buys for the first model on these questions (backend.pricing.budget_preview), with their
    prompts counted by the model's own tokenizer, as the run prices them."""
    sel.from_url("budgets", "5e11, 1e12, 2e12")
    raw = st.text_input("FLOP budgets per question (comma separated)", key="budgets")
    budgets = parse_budget_list(raw)
    if not budgets or not models:
        return budgets
    model = models[0]
    if model in SHIPPED_MODELS and not _installed_models().get(model):
        st.caption(f"Install {model} to see what these budgets buy.")
        return budgets
    from backend.pricing import budget_preview

    arch = _arch(model)
    if arch is None:  # a Hugging Face model: its engine knows its architecture, the form does not
        return budgets
    # before the prompts are counted: with no prompt a budget buys the most samples it can, the bound to refuse by
    bound = budget_preview(arch, budgets, [0.0], max_tokens)
    check_budget_samples(budgets, bound.prefill, bound.per_sample, model)
    if not st.toggle(
        "Show what these budgets buy on this model",
        key="price_budgets",
        help="Counts every question's prompt with the model's tokenizer (loads the model once): the numbers the run "
        "itself prices with. A sample is one prefill of the prompt + max tokens of decode.",
    ):
        return budgets
    prompts = _prompt_tokens(model, json.dumps(task, sort_keys=True), int(seed))
    if not prompts:
        return budgets
    p = budget_preview(arch, budgets, prompts, max_tokens)
    check_budget_samples(budgets, p.prefill, p.per_sample, model)
    df = pd.DataFrame(
        {
            "budget (FLOPs)": [f"{b:.3g}" for b in p.budgets],
            "in samples": [f"{x:.2f}" for x in p.samples],
            "samples per question": p.whole_samples,
            "generated tokens": p.whole_samples * int(max_tokens),
        }
    )
    st.caption(
        f"For **{model}** ({arch.n_params / 1e6:.0f}M forward parameters, {arch.n_layers} layers) on these "
        f"{len(prompts)} questions (prompts of {p.prompt_tokens:.0f} tokens on average, counted by its tokenizer): "
        f"1 sample = {p.one_sample:.3g} FLOPs (the prompt's prefill {p.prefill:.3g} + {max_tokens} tokens of decode "
        f"{p.per_sample:.3g}). Samples per question read the prompt once, so a budget buys more of them than its "
        "size in samples; shorter completions buy more still. A pool of the largest budget's size serves every "
        "smaller budget."
    )
    st.dataframe(df, hide_index=True)
    largest = int(p.whole_samples.max())
    if largest > 0:
        st.button(
            f"Use {largest} samples per question (largest budget)",
            key="use_budget",
            on_click=lambda: st.session_state.update(spq=largest),
        )
    return budgets


def _verifiers_section(problems: list) -> list:
    """The registry's verifiers; one with options (a PRM's model) gets a form generated from its options model."""
    from app_pages._options_form import options_controls
    from backend.verifiers import VERIFIERS

    chosen = st.multiselect(
        "Verifiers",
        list(VERIFIERS),
        default=[],
        key="verifiers",
        help="Score every pooled sample (best-of-N, weighted voting) and guide search strategies. "
        + "; ".join(f"{n}: {e.help}" for n, e in VERIFIERS.items()),
    )
    out: list = []
    for name in chosen:
        options = VERIFIERS[name].options
        if not options.model_fields:
            out.append(name)
            continue
        with st.expander(f"{name} options", expanded=True):
            out.append(
                {"name": name, **options_controls(options, f"verifier_{name}", f"verifiers[{len(out)}]", problems)}
            )
    return out


def _spec_dict(models, task, sampling, searches) -> dict:
    """The form as a spec mapping; `searches`: the spec's strategies, verifiers and budgets keys."""
    return {"models": models, "task": task, **sampling, **searches}


def form(store) -> None:
    _restore_form()
    with st.container(border=True):
        st.subheader("1 · Models and task suite")
        problems: list[TtcError] = []
        models = _models_section()
        task = _task_section(problems)
    with st.container(border=True):
        st.subheader("2 · Sampling and engine")
        sampling = {**_sampling_section(), **_engine_section(problems)}
    with st.container(border=True):
        st.subheader("3 · Strategies and budgets")
        verifiers = _verifiers_section(problems)
        searches = _strategies_section(problems)
        budgets: list[float] = []
        try:
            budgets = _budget_section(models, task, sampling["max_tokens"], sampling["seed"])
        except TtcError as e:
            frame.render_error(e)
            problems.append(e)
        if verifiers:
            searches = {**searches, "verifiers": verifiers}
        if searches.get("strategies") and budgets:
            searches = {**searches, "budgets": budgets, "budget_unit": "flops"}
    _remember_form()
    sel.to_url("run_models", "suite", "engine", *(["datasets"] if task["kind"] == "reasoning_gym" else []))
    sel.to_url("run_name", "spq", "temperature", "top_p", "max_tokens", "seed", "budgets")
    if st.button("Queue run", type="primary", key="queue", icon=":material/send:"):
        if problems:  # the form's own checks (JSON boxes) come first: queue nothing
            st.session_state.pop("queued_msg", None)
            frame.render_error(problems[0])
        else:
            _queue(_spec_dict(models, task, sampling, searches))
    if st.session_state.get("queued_msg"):
        st.success(st.session_state["queued_msg"], icon=":material/check_circle:")
    plan_panel(store, problems, _spec_dict(models, task, sampling, searches))


def plan_panel(store, problems: list, data: dict) -> None:
    """`ttc plan` for the form's spec, from this store's runs of the same task and model as the pilot."""
    with st.container(border=True):
        st.subheader("Size this study")
        st.caption(
            "From a pilot in this store (a finished run of the same task and model: queue this spec with a few "
            "questions per dataset and a few samples first, or run `ttc plan SPEC`, which runs its own): the "
            "max_tokens its finished completions need, samples per question, the questions that tell the two "
            "leading configurations apart (α = 0.05, power 0.8) and the study's FLOPs and wall time on this engine."
        )
        if not st.button("Plan from this store's runs", key="plan", icon=":material/straighten:"):
            return
        if problems:
            frame.render_error(problems[0])
            return
        try:
            from backend.planning import plan

            if store is None:
                raise TtcError(
                    "--pilot-store: this store holds no runs yet; allowed: a store with a finished pilot run"
                )
            with st.spinner("planning from the pilot…"):
                result = plan(parse_spec(data, "form"), store)
        except TtcError as e:
            frame.render_error(e)
            return
        cols = st.columns(3)
        cols[0].metric(
            "max_tokens", f"{result.max_tokens or '—'}{' (lower bound)' if result.max_tokens_is_lower_bound else ''}"
        )
        cols[1].metric("samples per question", result.samples_per_question)
        cols[2].metric("questions needed", result.questions_needed or "—")
        if result.separability != "ok":
            st.warning(f"Question set {result.separability}.", icon=":material/warning:")
        st.code(result.text(), language=None)


def _queue(data: dict) -> None:
    try:
        spec = parse_spec(data, "form")
        with st.spinner("checking the models and the task suite…"):
            store = stored.open_store(create=True)
            run_id = submit(store, spec)
    except TtcError as e:
        st.session_state.pop("queued_msg", None)
        frame.render_error(e)
        return
    st.session_state["queued_msg"] = f"Queued run `{run_id}` ({spec.samples_per_question} samples per question)."
    st.session_state["last_run"] = run_id


# ---- live progress ------------------------------------------------------------------------------------------------
def _fmt_eta(eta) -> str:
    if eta is None:
        return "—"
    eta = int(eta)
    return f"{eta // 60}m {eta % 60:02d}s" if eta >= 60 else f"{eta}s"


REFRESH_S = 1


def live_panel() -> None:
    """The workers and the runs, in the sidebar so that they stay in view while the form scrolls."""
    with st.sidebar:
        progress_panel()


@st.fragment(run_every=f"{REFRESH_S}s")
def progress_panel() -> None:
    st.subheader("Runs")
    store = stored.open_store()
    if store is None:
        st.caption("No runs yet.")
        return
    df = store.runs_arrow().to_pandas()
    _worker_header(store, df)
    if df.empty:
        st.caption("No runs yet.")
        return
    served = df["name"] == SERVED  # one run per request ttc serve answered: listed on the Serving page, not here
    df = df[~served]
    active = df[df["status"].isin(ACTIVE)]
    recent = df[~df["status"].isin(ACTIVE)].sort_values("updated_at", ascending=False).head(5)
    kept = samples_kept(store, list(recent["run_id"]))
    for row in active.itertuples():
        _active_row(store, row)
    for row in recent.itertuples():
        _final_card(row, kept[row.run_id])
    if served.any():
        st.caption(f"{int(served.sum())} served request(s) (`ttc serve`): read them on the Serving page.")
    st.caption(f"updated {datetime.now(UTC).strftime('%H:%M:%S')} UTC · refreshes every {REFRESH_S} s")


def _worker_header(store, runs: pd.DataFrame) -> None:
    """What each live worker is doing (idle, running or cancelling a run: backend.execution.workers.WorkerRow.state), or a
    warning with a button when none is alive."""
    try:
        live = [w for w in worker_table(store) if w.live]
    except Exception:  # noqa: BLE001 - catalog from before the workers table
        live = []
    for w in live:
        busy = not w.state.startswith("idle")
        text = f"Worker {w.label}: {w.state}"
        if busy and w.current_run_id:
            p = progress(store, w.current_run_id)
            text += f" · {p.done}/{p.total} samples" if p is not None else ""
        (st.info if busy else st.success)(text, icon=":material/memory:")
    if live:
        return
    st.warning("No worker is running: queued runs wait until one starts.", icon=":material/warning:")
    if st.button("Start worker", key="start_worker", icon=":material/play_arrow:"):
        try:
            start = ensure_worker(store)  # a second click, or another dashboard's, finds the first worker
        except TtcError as e:
            frame.render_error(e)
        else:
            st.toast(f"worker {start.worker.label} " + ("started" if start.started else "was already running"))


def _holder(p) -> str:
    """Who holds a running run and for how long: a lease that ran out means its worker is gone and the run waits
    for another worker to take it over."""
    if p.worker_id is None or p.lease_left_s is None:
        return ""
    lease = f"lease {p.lease_left_s:.0f} s" if p.lease_left_s >= 0 else "lease expired: waiting for a worker"
    resumed = f" · claim {p.attempts}" if p.attempts > 1 else ""
    return f" · worker {p.worker_id} · {lease}{resumed}"


def _request_cancel(store, run_id: str) -> None:
    cancel(store, run_id)
    st.toast(f"cancelling {run_id}: the samples finished so far are kept")


def _active_row(store, row) -> None:
    """A queued or running run: live done/total, and a labelled cancel that turns into "Cancelling…" once asked."""
    p = progress(store, row.run_id)
    if p is None:
        return
    if p.status not in ACTIVE:  # it ended between the two reads: drawn as ended, with no cancel button
        _final_card(row._replace(status=p.status), p.done)
        return
    cancelling = p.status == "running" and bool(row.cancel_requested)
    status = "cancelling" if cancelling else p.status
    with st.container(border=True):
        st.progress(
            p.fraction,
            text=(
                f"`{row.run_id}` · {status} · {p.done}/{p.total} samples · "
                f"{p.tokens_per_s:.1f} tokens/s · ETA {_fmt_eta(p.eta_s)}"
            )
            + _holder(p),
        )
        if cancelling:
            st.button("Cancelling…", key=f"cancelling_{row.run_id}", icon=":material/hourglass_top:", disabled=True)
        else:
            st.button(
                "Cancel run",
                key=f"cancel_{row.run_id}",
                icon=":material/stop_circle:",
                on_click=_request_cancel,
                args=(store, row.run_id),
                help="Stops generating within seconds; the samples finished so far are kept.",
            )


def _final_card(row, kept: int) -> None:
    """A run that ended: how it ended and how many samples it kept."""
    total = int(row.total_samples or 0)
    with st.container(border=True):
        if row.status == "done":
            text = f"`{row.run_id}` · done · {kept}/{total} samples"
        else:
            text = f"`{row.run_id}` · {row.status} · {kept}/{total} samples kept"
        st.progress(min(1.0, kept / total) if total else 0.0, text=text)
        if row.status == "cancelled":
            st.caption(
                f"Cancelled: {kept} finished sample{'s' if kept != 1 else ''} kept; the ones being generated at the "
                "cancel were discarded. Queue the same spec again to generate only the missing samples."
            )
        if isinstance(row.error, str) and row.error:
            st.error(f"{row.run_id}: {row.error}")


def allocation_section(store) -> None:
    """An adaptive run's allocation: per question and round, the samples given and why (backend/execution/allocation.py)."""
    runs = adaptive_runs(store)
    if not runs:
        return
    st.subheader("Adaptive allocation")
    labels = [f"{run_id} · {model}" for run_id, model in runs]
    sel.from_url("alloc", labels[0], options=labels)
    choice = st.selectbox("Adaptive run", labels, key="alloc")
    sel.to_url("alloc")
    run_id, model = runs[labels.index(choice)]
    s = allocation_summary(store, run_id, model)
    if s is None:
        return
    per_q = s.per_question
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Rounds", s.rounds)
    m2.metric("Samples", int(per_q["samples"].sum()), help=f"of at most {len(per_q)} questions × the cap per question")
    m3.metric(
        "FLOPs spent / budget",
        f"{s.spent_flops:.3g} / {s.total_flops:.3g}",
        help="the ledger: each prompt's prefill once, every sample's decode; never more than the budget",
    )
    m4.metric("Questions settled", f"{int((per_q['last_reason'] == 'settled').sum())} of {len(per_q)}")
    order = per_q["question_id"].tolist()  # easiest (most agreement) first
    grid = s.decisions.pivot(index="question_id", columns="round", values="samples").reindex(order)
    why = s.decisions.pivot(index="question_id", columns="round", values="reason").reindex(order)
    fig = go.Figure(
        go.Heatmap(
            z=grid.to_numpy(dtype=float),
            x=[f"round {r}" for r in grid.columns],
            y=order,
            text=why.to_numpy(dtype=object),
            texttemplate="%{z:.0f}",
            colorscale="Blues",
            colorbar=dict(title="samples<br>given"),
            hovertemplate="%{y} · %{x}<br>%{z:.0f} samples: %{text}<extra></extra>",
        )
    )
    fig.update_yaxes(title="question (easiest first)", autorange="reversed", type="category")
    charts.style_figure(fig, title="Samples given per question and round", height=max(320, 22 * len(order) + 160))
    charts.chart(fig, "adaptive-allocation")
    st.caption(
        "Each round gives open questions samples by how unsettled they are; a settled question (its stopping rule "
        "met) stops, one predicted hopeless gets one sample per round, and no round is given more than the budget "
        "left at its samples' upper bounds. Hover a cell for the decision's reason."
    )
    charts.table(per_q, "adaptive-questions", expander="Per question: samples, rounds and the last decision")
    charts.table(s.decisions, "adaptive-decisions", expander="Every decision with the inputs it was made from")


NO_TOKENIZER = "none: missing counts stay empty"
TOKENIZER_PATH = "a GGUF file or tokenizer directory…"


def _import_tokenizer() -> str | None:
    """What recounts the token counts the files lack (`ttc import --tokenizer`): an installed shipped model's
    tokenizer, or a GGUF file or Hugging Face tokenizer directory on this machine; None: they stay NULL."""
    installed = [name for name, ok in _installed_models().items() if ok]
    t1, t2 = st.columns(2)
    choice = t1.selectbox(
        "Tokenizer (recounts missing token counts)",
        [NO_TOKENIZER, *installed, TOKENIZER_PATH],
        key="import_tokenizer",
        help="ttc import --tokenizer: counts the prompts and completions the files give no token counts for, with "
        "the model's own tokenizer (FLOPs and cost of pass need them)",
    )
    path = t2.text_input(
        "Tokenizer path",
        key="import_tokenizer_path",
        disabled=choice != TOKENIZER_PATH,
        help="a .gguf file or a Hugging Face tokenizer directory on the dashboard's machine",
    )
    if choice == NO_TOKENIZER:
        return None
    return path if choice == TOKENIZER_PATH else choice


def import_panel(store) -> None:
    """Samples made elsewhere become a read-only run (`ttc import`): the formats and their options come from the
    importers' registry."""
    from app_pages._options_form import options_controls
    from backend.importers import IMPORTERS
    from backend.importers.dashboard import import_from_dashboard

    with st.expander("Import samples made elsewhere", expanded=False):
        fmt = st.selectbox("Format", list(IMPORTERS), key="import_format", help="ttc import FORMAT")
        entry = IMPORTERS[fmt]
        st.caption(entry.help)
        uploads = st.file_uploader(
            "Files", accept_multiple_files=True, key="import_uploads", type=[s.lstrip(".") for s in entry.suffixes]
        )
        paths = st.text_input(
            "or paths on this machine", key="import_paths", help="files or glob patterns, e.g. samples/*.yaml"
        )
        c1, c2, c3 = st.columns(3)
        model = c1.text_input("Model that wrote them", value="imported", key="import_model")
        run_name = c2.text_input("Imported run's name", value="", key="import_run", help="empty: the format's name")
        params = c3.number_input(
            "Parameters (for FLOPs)", min_value=0, value=0, step=1, key="import_params", help="0: FLOPs stay NULL"
        )
        tokenizer = _import_tokenizer()
        problems: list = []
        options = options_controls(entry.options, f"import_{fmt}", "options", problems)
        if st.button("Import", key="import_go", disabled=bool(problems)):
            try:
                with st.spinner("Importing: every record is checked before the run is committed"):
                    result = import_from_dashboard(
                        store,
                        fmt,
                        uploads=[(u.name, u.getvalue()) for u in uploads or []],
                        paths=paths,
                        name=run_name,
                        model=model,
                        params=int(params) or None,
                        options=options,
                        tokenizer=tokenizer,
                    )
            except TtcError as e:
                frame.render_error(e)
            else:
                st.success(str(result))


def body(store) -> None:
    live_panel()
    form(store)
    if store is not None:
        import_panel(store)
        allocation_section(store)


frame.run_page(
    "run", "Run", body, needs_samples=False, caption="Queue a run for the worker and watch it write samples."
)
