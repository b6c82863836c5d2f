"""Samples: filter and read every stored sample, and a search trajectory as a tree."""

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app_pages import _charts as charts
from app_pages import _page as frame
from app_pages import _quality as data_quality
from app_pages import _report as study_report
from app_pages import _selection as sel
from app_pages import _store as stored
from app_pages import _views as views

CORRECT = ["all", "correct", "wrong"]


def body(store) -> None:
    groups = stored.sample_groups(store)
    run_opts = ["(all)"] + sorted(groups["run_id"].unique())
    sel.from_url("run", "(all)", options=run_opts)
    c1, c2, c3, c4, c5 = st.columns([3, 2, 3, 1.3, 2])
    run_id = c1.selectbox("Run", run_opts, key="run")
    run_id = None if run_id == "(all)" else run_id
    models = groups if run_id is None else groups[groups["run_id"] == run_id]
    model_opts = ["(all)"] + sorted(models["model"].unique())
    sel.from_url("model", "(all)", options=model_opts)
    model = c2.selectbox("Model", model_opts, key="model")
    model = None if model == "(all)" else model
    keys = views.question_choices(store, run_id, model)
    q_opts = ["(all)", *keys]
    sel.from_url("question", "(all)", options=q_opts)
    question = c3.selectbox("Question", q_opts, key="question")
    question = keys.get(question)
    sel.from_url("correct", "all", options=CORRECT)
    correct = c4.selectbox("Graded", CORRECT, key="correct")
    sel.from_url("text", "")
    text = c5.text_input("Completion or answer contains", key="text")
    sel.to_url("run", "model", "question", "correct", "text")

    data_quality.strip(
        store, [run_id] if run_id else groups["run_id"].unique().tolist(), None if model is None else [model]
    )
    study_report.download_button(
        store, [run_id] if run_id else None, [model] if model else sorted(models["model"].unique())
    )
    df = views.samples_page(store, run_id, model, question, correct, text.strip(), limit=500)
    st.caption(f"{len(df)} sample(s) shown (at most 500; narrow the filters to see others)")
    charts.table(
        df.drop(columns=["prompt"]),
        "samples",
        height=320,
        column_config={"completion": st.column_config.TextColumn(width="large")},
    )
    if not df.empty:
        labels = [f"{r.question_id} #{r.sample_idx} · {r.model} · {'✓' if r.correct else '✗'}" for r in df.itertuples()]
        pick = st.selectbox("Read a sample", range(len(df)), format_func=lambda i: labels[i], key="pick")
        row = df.iloc[int(pick)]
        _sample_detail(store, row)
    _tree_section(store)


def _sample_detail(store, row) -> None:
    with st.container(border=True):
        m1, m2, m3, m4 = st.columns(4)
        m1.metric("Answer", str(row["answer"]) if row["answer"] is not None else "—")
        m2.metric("Correct", "yes" if row["correct"] else "no")
        m3.metric("Grader score", f"{row['score']:.2f}" if row["score"] == row["score"] else "—")
        m4.metric(
            "Completion tokens",
            int(row["completion_tokens"]) if row["completion_tokens"] == row["completion_tokens"] else "—",
        )
        q = views.question_row(store, row["run_id"], row["question_id"])
        if not q.empty:
            st.markdown(f"**Reference answer:** `{q['reference'][0]}` · difficulty `{q['difficulty'][0]}`")
        left, right = st.columns(2)
        left.markdown("**Prompt**")
        left.code(row["prompt"] or "", language=None, wrap_lines=True)
        right.markdown("**Completion**")
        right.code(row["completion"] or "", language=None, wrap_lines=True)
        scores = views.sample_scores(store, row["run_id"], row["model"], row["question_id"], int(row["sample_idx"]))
        if not scores.empty:
            st.markdown("**Verifier scores**")
            st.dataframe(scores, hide_index=True)


def _tree_section(store) -> None:
    st.subheader("Search trajectory")
    choices = views.tree_choices(store)
    if choices.empty:
        st.info(
            "No search trees in this store yet: search strategies (beam search, lookahead, ...) store every node here."
        )
        return
    labels = [f"{r.question_id} · {r.strategy} · {r.model} · {r.run_id}" for r in choices.itertuples()]
    sel.from_url("tree", 0, options=list(range(len(choices))), cast=int)
    i = st.selectbox("Tree", range(len(choices)), format_func=lambda j: labels[j], key="tree")
    sel.to_url("tree")
    c = choices.iloc[int(i)]
    nodes = views.tree_nodes(store, c["run_id"], c["model"], c["strategy"], c["config"], c["question_id"])
    st.caption(f"config: `{c['config']}`")
    charts.chart(_tree_figure(nodes), "search-tree")
    charts.table(nodes, "search-tree-nodes", height=260, expander="Nodes of this tree")


def _tree_figure(nodes) -> go.Figure:
    """Nodes laid out by depth (x) and order within depth (y); edges parent → child; colour = step score."""
    pos = {}
    for depth, grp in nodes.groupby("depth"):
        n = len(grp)
        for j, node_id in enumerate(grp["node_id"]):
            pos[int(node_id)] = (int(depth), (j - (n - 1) / 2.0))
    ex, ey = [], []
    for r in nodes.itertuples():
        if int(r.parent_id) in pos:
            (x0, y0), (x1, y1) = pos[int(r.parent_id)], pos[int(r.node_id)]
            ex += [x0, x1, None]
            ey += [y0, y1, None]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=ex, y=ey, mode="lines", line=dict(color="#bbbbbb", width=1.5), hoverinfo="skip", showlegend=False)
    )
    xs = [pos[int(i)][0] for i in nodes["node_id"]]
    ys = [pos[int(i)][1] for i in nodes["node_id"]]
    symbols = ["star" if s else ("diamond" if f else "circle") for s, f in zip(nodes["selected"], nodes["is_final"])]
    hover = [
        f"node {r.node_id} (depth {r.depth})<br>score {r.step_score:.3f}<br>{(r.step_text or '')[:80]}"
        + (f"<br>answer {r.answer} ({'correct' if r.correct else 'wrong'})" if r.is_final else "")
        for r in nodes.itertuples()
    ]
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="markers",
            text=hover,
            hoverinfo="text",
            showlegend=False,
            marker=dict(
                size=[22 if s else 14 for s in nodes["selected"]],
                symbol=symbols,
                color=np.nan_to_num(nodes["step_score"].to_numpy(float)),
                colorscale="Viridis",
                cmin=0,
                cmax=1,
                colorbar=dict(title="step score"),
                line=dict(color="#333", width=1),
            ),
        )
    )
    fig.update_xaxes(title="depth (step)", dtick=1)
    fig.update_yaxes(visible=False)
    return charts.style_figure(fig, title="Search tree (★ selected, ◆ final candidates)", height=420)


frame.run_page(
    "samples", "Samples", body, caption="Filter and read samples: prompt, completion, answer, grade, verifier scores."
)
