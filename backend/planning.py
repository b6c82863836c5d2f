"""Size a study before paying for it: from a pilot (a few questions per dataset, a few samples each) recommend
`max_tokens`, samples per question and the number of questions that tells the two leading configurations apart,
and estimate what the study costs on this engine.

- **max_tokens**: the 95th percentile of the pilot's *finished* completions (finish_reason 'stop'), rounded up to a
  multiple of 16. Finished lengths are censored at the pilot's cap (a completion that would have been longer was
  cut), so when more than `TRUNCATION_THRESHOLD` of the pilot was cut the figure is only a lower bound and the plan
  asks for a re-pilot at twice the cap.
- **samples per question**: twice the samples the study's largest budget buys a pool rule (backend.pricing's
  `samples_bought` at the pilot's mean finished length), so that a rule's expected accuracy at that budget averages
  over many k-subsets of the pool (at exactly k there is one); without budgets, the spec's own. The length is the
  pilot's expected one at the spec's max_tokens (a cut sample counts at the cap).
- **questions needed**: the study's configurations the pilot can evaluate (pool rules at the spec's budgets, and
  any searches the pilot store holds) go through the compute-optimal table (backend.metrics.study); at each budget
  the one with the highest mean accuracy over the pilot's questions and the best one that differs from it are the
  leading pair, and their per-question differences give the paired statistics' sample size
  (backend.metrics.paired.questions_needed).
- **cost**: FLOPs priced by backend.pricing (prefill once per question, decode per sample at the expected length,
  the pilot's measured verifier passes per sample, and each search at most its budget per question), and wall time
  = FLOPs / the pilot's measured generation throughput (its samples' FLOPs over the span from the first sample's
  start, created_at − latency_s, to the last one's end).
- **separability**: a question set where nearly every question is always solved (or never) in the pilot cannot
  separate configurations; the plan says so, overall and per dataset × level."""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from backend.config import RunSpec, parse_spec
from backend.errors import SpecError, StoreError

TRUNCATION_THRESHOLD = 0.10
"""Share of pilot samples cut at max_tokens above which the max_tokens recommendation is a lower bound."""
FINISHED_QUANTILE = 0.95
ROUND_TOKENS = 16
SATURATED_SHARE = 0.9
"""A question set is too easy (too hard) when this share of its questions were always (never) solved."""
PILOT_QUESTIONS = 2
PILOT_SAMPLES = 4


@dataclass(frozen=True)
class Leading:
    """The two leading configurations at one budget and how many questions would tell them apart."""

    budget_samples: float
    budget_flops: float
    a: str
    b: str
    accuracy_a: float
    accuracy_b: float
    difference: float  # mean over the pilot's questions of a - b
    questions_needed: int | None  # None: no difference observed in the pilot


@dataclass(frozen=True)
class Cost:
    """What a study of `questions` × `samples_per_question` at `max_tokens` costs on this engine."""

    questions: int
    samples_per_question: int
    max_tokens: int
    flops: float
    wall_s: float | None  # None: the pilot's throughput could not be measured


@dataclass(frozen=True)
class Group:
    dataset: str
    level: float | None
    questions: int
    pass_at_1: float
    always: int  # questions every pilot sample solved
    never: int  # questions no pilot sample solved
    verdict: str  # "ok" | "too easy" | "too hard"


@dataclass(frozen=True)
class Plan:
    spec: str
    model: str
    pilot_runs: list[str]
    pilot_questions: int
    pilot_samples: int  # samples in the pilot
    pilot_max_tokens: int | None
    truncated_share: float
    finished_quantile_tokens: float | None  # FINISHED_QUANTILE of the finished completions' lengths
    max_tokens: int | None  # recommended (None: nothing finished in the pilot)
    max_tokens_is_lower_bound: bool
    repilot_max_tokens: int | None  # re-pilot at this cap (the recommendation is censored)
    samples_per_question: int
    spec_questions: int
    leading: list[Leading]  # one per budget
    questions_needed: int | None  # at the largest budget
    separability: str  # "ok" | "too easy" | "too hard"
    groups: list[Group]
    pilot_flops_per_s: float | None
    as_written: Cost
    as_recommended: Cost
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=float)

    def text(self) -> str:
        lines = [
            f"plan for {self.spec} on {self.model}",
            f"pilot: {self.pilot_questions} questions, {self.pilot_samples} samples at max_tokens = "
            f"{self.pilot_max_tokens} (run {', '.join(self.pilot_runs)})",
        ]
        cut = f"{self.truncated_share:.0%} of the pilot's samples stopped at max_tokens"
        if self.max_tokens is None:
            lines.append(f"max_tokens: no recommendation ({cut}; none finished); re-pilot at {self.repilot_max_tokens}")
        else:
            q = f"{FINISHED_QUANTILE:.0%}"
            line = f"max_tokens: {self.max_tokens} ({q} of finished completions are <= {self.finished_quantile_tokens:.0f} tokens; {cut})"
            if self.max_tokens_is_lower_bound:
                line += (
                    f"; a LOWER BOUND: finished lengths are censored at the cap, re-pilot at {self.repilot_max_tokens}"
                )
            lines.append(line)
        lines.append(f"samples per question: {self.samples_per_question}")
        if self.questions_needed is None:
            lines.append(
                "questions needed: cannot tell (the pilot's two leading configurations do not differ on its questions)"
            )
        else:
            more = (
                "enough"
                if self.questions_needed <= self.spec_questions
                else f"{self.questions_needed - self.spec_questions} more"
            )
            lines.append(
                f"questions needed: {self.questions_needed} to tell the two leading configurations apart at "
                f"alpha = 0.05, power = 0.8 (the spec has {self.spec_questions}: {more})"
            )
        for lead in self.leading:
            n = "—" if lead.questions_needed is None else str(lead.questions_needed)
            lines.append(
                f"  at {lead.budget_samples:.3g} samples: {lead.a} {lead.accuracy_a:.2f} vs {lead.b} "
                f"{lead.accuracy_b:.2f} (difference {lead.difference:+.2f}): {n} questions"
            )
        lines.append(f"question set: {self.separability}")
        for g in self.groups:
            level = "" if g.level is None else f" level {g.level:g}"
            lines.append(
                f"  {g.dataset}{level}: {g.questions} questions, pass@1 {g.pass_at_1:.2f}, always solved {g.always}, "
                f"never {g.never}: {g.verdict}"
            )
        if self.pilot_flops_per_s is not None:
            lines.append(
                f"pilot throughput: {self.pilot_flops_per_s:.3g} FLOP/s generating (wall time scales with it: a pilot "
                "run beside other work times the study as slowly)"
            )
        for label, c in (("as written", self.as_written), ("as recommended", self.as_recommended)):
            wall = "unknown" if c.wall_s is None else _duration(c.wall_s)
            lines.append(
                f"cost {label}: {c.questions} questions × {c.samples_per_question} samples at max_tokens = "
                f"{c.max_tokens}: {c.flops:.3g} FLOPs, ≈ {wall} on this engine"
            )
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def round_up(tokens: float, step: int = ROUND_TOKENS) -> int:
    return max(step, int(math.ceil(tokens / step) * step))


def spec_questions(spec: RunSpec) -> int:
    """Distinct questions the spec's task generates (the unit pools count)."""
    from backend.pricing import distinct_questions
    from backend.tasks import create_task

    return len(distinct_questions(create_task(spec.task, seed=spec.seed).questions()))


# ---- the pilot ----------------------------------------------------------------------------------------------------
def pilot_spec(
    spec: RunSpec, questions: int = PILOT_QUESTIONS, samples: int = PILOT_SAMPLES, max_tokens=None
) -> RunSpec:
    """The spec cut down to a pilot: its first model, `questions` per dataset (or the first `questions` of a suite
    without datasets), `samples` each, its verifiers, no searches (they are what the plan prices, not what it
    needs to measure)."""
    for name, value in (("--pilot-questions", questions), ("--pilot-samples", samples)):
        if value < 1:
            raise SpecError(name, f"{value}", "a whole number, at least 1")
    data = spec.model_dump(mode="json")
    task = data["task"]
    if "datasets" in task:
        for d in task["datasets"]:
            d["size"] = min(d["size"], questions)
    elif "size" in task:
        task["size"] = min(task["size"] or questions, questions)
    else:
        raise SpecError(
            "task.kind", f"a {task['kind']!r} suite cannot be cut to a pilot", "a suite with size or datasets"
        )
    data.update(
        name=f"{spec.name}-pilot"[:64],
        models=data["models"][:1],
        samples_per_question=samples,
        max_tokens=max_tokens or spec.max_tokens,
        strategies=[],
        budgets=[],
        adaptive=None,
    )
    return parse_spec(data, "pilot")


def run_pilot(spec: RunSpec, store, progress: Callable[[int, int], None] | None = None, **kw) -> str:
    """Run the pilot through the product's normal path (prepare_run + the worker's execute) into `store`."""
    from backend.execution.execute import execute
    from backend.execution.sampling import prepare_run

    prepared = prepare_run(pilot_spec(spec, **kw))
    return str(execute(prepared, store, progress=progress)["run_id"])


def plan_spec(
    spec_path: str | Path,
    pilot_store: str | Path | None = None,
    *,
    keep_pilot: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    **pilot: int | None,
) -> Plan:
    """`ttc plan`: with `pilot_store`, plan from the runs it holds; else run a pilot (into `keep_pilot` or a
    temporary store) and plan from it."""
    from backend.config import load_spec
    from store import Store

    spec = load_spec(spec_path)
    name = Path(spec_path).name
    if pilot_store is not None:
        store = Store.open(pilot_store, create=False)
        return plan(spec, store, name)
    if keep_pilot is not None:
        store = Store.open(keep_pilot)
        run_pilot(spec, store, progress, **pilot)
        return plan(spec, store, name)
    with tempfile.TemporaryDirectory(prefix="ttc-pilot-") as tmp:
        store = Store.open(tmp)
        run_pilot(spec, store, progress, **pilot)
        return plan(spec, store, name)


def pilot_runs(con, spec: RunSpec, store_root) -> tuple[list[str], str]:
    """The finished sampling runs of the store that pilot this spec: same task kind, spec's first model."""
    model = spec.model_specs()[0].name
    rows = con.execute("SELECT run_id, spec_json, status FROM runs ORDER BY created_at").fetchall()
    runs = []
    for run_id, spec_json, status in rows:
        s = json.loads(spec_json or "{}")
        if status == "done" and not s.get("adaptive") and (s.get("task") or {}).get("kind") == spec.task.kind:
            runs.append(run_id)
    if runs:
        runs = [
            r[0]
            for r in con.execute(
                "SELECT DISTINCT run_id FROM samples WHERE list_contains(?, run_id) AND model = ? ORDER BY 1",
                [runs, model],
            ).fetchall()
        ]
    if not runs:
        raise StoreError(
            f"--pilot-store: {store_root} holds no finished, non-adaptive {spec.task.kind} run of {model}; allowed: "
            "a store where a run of the same task and model finished (or leave --pilot-store out to run a pilot)"
        )
    return runs, model


# ---- the plan -----------------------------------------------------------------------------------------------------
def plan(spec: RunSpec, store, spec_name: str | None = None, arch=None) -> Plan:
    """Plan `spec` from the pilot runs `store` holds (module docstring). `arch`: the model's architecture numbers
    (default: its GGUF's, through the registry)."""
    con = store.connect()
    try:
        runs, model = pilot_runs(con, spec, store.root)
        try:
            return _plan(con, spec, spec_name or spec.name, runs, model, arch)
        except ValueError as e:  # the metrics refuse a pool they cannot read (one line, as ttc compute-optimal)
            raise StoreError(f"--pilot-store: the pilot in {store.root} cannot be planned from: {e}") from None
    finally:
        con.close()


def _plan(con, spec: RunSpec, spec_name: str, runs: list[str], model: str, arch) -> Plan:
    from backend.metrics.paired import questions_needed
    from backend.metrics.study import AUTO, study_inputs
    from backend.models.registry import resolve_model
    from backend.pricing import budget_flops, one_sample_flops, runs_max_tokens, samples_bought

    notes: list[str] = []
    arch = arch or resolve_model(model).arch
    if arch is None:
        raise StoreError(f"models[0]: {model!r} has no architecture numbers to price FLOPs with; allowed: a GGUF model")
    s = con.execute(
        """SELECT count(*) AS n,
                  avg(CASE WHEN finish_reason = 'length' THEN 1 ELSE 0 END) AS cut,
                  quantile_cont(completion_tokens, ?) FILTER (WHERE finish_reason = 'stop') AS q_finished,
                  sum(flops) AS flops,
                  epoch(max(created_at)) - min(epoch(created_at) - coalesce(latency_s, 0)) AS span_s,
                  count(DISTINCT question_key) AS questions
           FROM samples WHERE list_contains(?, run_id) AND model = ?""",
        [FINISHED_QUANTILE, runs, model],
    ).fetchone()
    n_samples, cut, q_finished, pilot_flops, span_s, n_questions = s
    pilot_cap = runs_max_tokens(con, runs)
    truncated = float(cut or 0.0)
    lower_bound = truncated > TRUNCATION_THRESHOLD
    rec_tokens = None if q_finished is None else round_up(float(q_finished))
    repilot = None
    if pilot_cap is not None and (lower_bound or rec_tokens is None):
        repilot = 2 * pilot_cap
    expected_tokens = _expected_tokens(con, runs, model, rec_tokens or spec.max_tokens)
    expected_at_spec = _expected_tokens(con, runs, model, spec.max_tokens)

    prompt = np.asarray(
        [
            r[0]
            for r in con.execute(
                "SELECT max(prompt_tokens) FROM samples WHERE list_contains(?, run_id) AND model = ? GROUP BY question_key",
                [runs, model],
            ).fetchall()
        ],
        dtype=np.float64,
    )
    budgets_samples = list(spec.budgets) if spec.budgets else [float(spec.samples_per_question)]
    unit = spec.budget_unit if spec.budgets else "samples"
    budgets = budget_flops(arch, budgets_samples, unit, prompt, spec.max_tokens)
    inputs = study_inputs(con, runs, model, verifier=AUTO, n_bins=1, budgets=budgets)
    notes.extend(inputs.notes)
    unit_flops = one_sample_flops(arch, prompt, spec.max_tokens)  # budgets shown in the spec's own unit
    leading = _leading(inputs.table, questions_needed, unit_flops)
    top = leading[-1] if leading else None
    if len(leading) < len(inputs.table.budgets):
        notes.append(
            f"at {len(inputs.table.budgets) - len(leading)} of {len(inputs.table.budgets)} budgets fewer than two "
            "configurations covered every pilot question: nothing to compare there"
        )

    mean_prompt = float(prompt.mean())
    verifier_per_sample = _verifier_flops_per_sample(con, runs, model)
    if spec.budgets:
        k_top = int(samples_bought(arch, max(budgets), mean_prompt, expected_at_spec))
        rec_samples = max(2, 2 * k_top)
    else:
        rec_samples = spec.samples_per_question
    groups = _groups(con, runs, model)
    always = sum(g.always for g in groups)
    never = sum(g.never for g in groups)
    total_q = sum(g.questions for g in groups) or 1
    separability = (
        "too easy: nearly every question is always solved, nothing separates the configurations"
        if always >= SATURATED_SHARE * total_q
        else "too hard: nearly every question is never solved, nothing separates the configurations"
        if never >= SATURATED_SHARE * total_q
        else "ok"
    )
    rate = float(pilot_flops) / float(span_s) if pilot_flops and span_s and span_s > 0 else None
    n_spec = spec_questions(spec)

    def cost(questions: int, samples: int, max_tokens: int, per_sample_tokens: float) -> Cost:
        flops = _study_flops(
            spec, arch, mean_prompt, questions, samples, max_tokens, per_sample_tokens, verifier_per_sample, prompt
        )
        return Cost(questions, samples, max_tokens, flops, None if rate is None else flops / rate)

    written = cost(n_spec, spec.samples_per_question, spec.max_tokens, expected_at_spec)
    needed = top.questions_needed if top is not None and top.questions_needed else n_spec
    recommended = cost(needed, rec_samples, rec_tokens or spec.max_tokens, expected_tokens)
    if int(n_questions) < 10:
        notes.append(f"the pilot has {int(n_questions)} questions: its figures are rough (a larger pilot narrows them)")
    if len(spec.model_specs()) > 1:
        notes.append(f"the spec lists {len(spec.model_specs())} models; this plan is for the first, {model}")
    if spec.strategies:
        notes.append("searches are priced at their full budget per question (an upper bound: a search may stop early)")
    return Plan(
        spec=spec_name,
        model=model,
        pilot_runs=runs,
        pilot_questions=int(n_questions),
        pilot_samples=int(n_samples),
        pilot_max_tokens=pilot_cap,
        truncated_share=truncated,
        finished_quantile_tokens=None if q_finished is None else float(q_finished),
        max_tokens=rec_tokens,
        max_tokens_is_lower_bound=lower_bound or rec_tokens is None,
        repilot_max_tokens=repilot,
        samples_per_question=rec_samples,
        spec_questions=n_spec,
        leading=leading,
        questions_needed=None if top is None else top.questions_needed,
        separability=separability,
        groups=groups,
        pilot_flops_per_s=rate,
        as_written=written,
        as_recommended=recommended,
        notes=notes,
    )


def _leading(table, questions_needed, unit_flops: float) -> list[Leading]:
    """Per budget, among the configurations that cover every question, the one with the highest mean accuracy and
    the best one that differs from it on some question (on a small pool several rules pick the same answers: a
    comparison of two identical columns tells nothing). `unit_flops`: "1 sample" at the spec's max_tokens, the unit
    the budgets are shown in."""
    out = []
    for b in range(len(table.budgets)):
        acc = table.accuracy[:, b, :]  # (C, Q)
        full = ~np.isnan(acc).any(axis=1)
        if full.sum() < 2:
            continue
        mean = np.where(full, np.nanmean(np.where(full[:, None], acc, 0.0), axis=1), -np.inf)
        order = [int(c) for c in np.argsort(-mean, kind="stable") if full[c]]
        i = order[0]
        differ = [c for c in order[1:] if not np.allclose(acc[c], acc[i])]
        j = differ[0] if differ else order[1]
        d = acc[i] - acc[j]
        out.append(
            Leading(
                budget_samples=float(table.budgets[b] / unit_flops),
                budget_flops=float(table.budgets[b]),
                a=table.configurations[i],
                b=table.configurations[j],
                accuracy_a=float(acc[i].mean()),
                accuracy_b=float(acc[j].mean()),
                difference=float(d.mean()),
                questions_needed=questions_needed(d),
            )
        )
    return out


def _expected_tokens(con, runs, model, max_tokens: int) -> float:
    """Mean completion length at `max_tokens`: finished completions at their length (capped), cut ones at the cap
    (they would likely run on to it again)."""
    (value,) = con.execute(
        """SELECT avg(CASE WHEN finish_reason = 'length' THEN ? ELSE least(completion_tokens, ?) END)
           FROM samples WHERE list_contains(?, run_id) AND model = ?""",
        [max_tokens, max_tokens, runs, model],
    ).fetchone()
    return float(value if value is not None else max_tokens)


def _verifier_flops_per_sample(con, runs, model) -> float:
    """Σ over the pilot's verifiers of the mean FLOPs of one verifier pass on a sample (their ledger's charge)."""
    (value,) = con.execute(
        """SELECT coalesce(sum(m), 0) FROM (SELECT avg(verifier_flops) AS m FROM scores
           WHERE list_contains(?, run_id) AND model = ? GROUP BY verifier)""",
        [runs, model],
    ).fetchone()
    return float(value)


def _study_flops(spec, arch, mean_prompt, questions, samples, max_tokens, tokens, verifier_per_sample, prompt):
    """The pool (backend.pricing: one prefill per question, `samples` decodes of `tokens`), its verifier passes
    and every search at its budget (budgets in the spec's unit at `max_tokens`)."""
    from backend.pricing import budget_flops, pool_flops

    pool = float(np.mean(pool_flops(arch, prompt, tokens, samples)))
    per_question = pool + samples * verifier_per_sample
    if spec.strategies and spec.budgets:
        points = sum(max(1, len(s.ratios or ())) for s in spec.strategies)
        per_question += points * sum(budget_flops(arch, spec.budgets, spec.budget_unit, prompt, max_tokens))
    return float(questions * per_question)


def _groups(con, runs: Sequence[str], model: str) -> list[Group]:
    """Per dataset × level: pilot pass@1 and how many questions were always / never solved."""
    df = con.execute(
        """WITH q AS (SELECT s.dataset, any_value(k.level) AS level, s.question_key,
                             avg(CASE WHEN s.correct THEN 1.0 ELSE 0.0 END) AS p
                      FROM samples s LEFT JOIN questions k ON k.run_id = s.run_id AND k.question_id = s.question_id
                      WHERE list_contains(?, s.run_id) AND s.model = ? GROUP BY 1, 3)
           SELECT coalesce(dataset, '?') AS dataset, level, count(*) AS n, avg(p) AS p,
                  sum(CASE WHEN p = 1 THEN 1 ELSE 0 END) AS always, sum(CASE WHEN p = 0 THEN 1 ELSE 0 END) AS never
           FROM q GROUP BY 1, 2 ORDER BY 1, 2""",
        [list(runs), model],
    ).fetchall()
    out = []
    for dataset, level, n, p, always, never in df:
        verdict = "too easy" if always >= SATURATED_SHARE * n else "too hard" if never >= SATURATED_SHARE * n else "ok"
        level = None if level is None or (isinstance(level, float) and math.isnan(level)) else float(level)
        out.append(Group(str(dataset), level, int(n), float(p), int(always), int(never), verdict))
    return out
