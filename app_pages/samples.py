"""Samples: filter and read every stored sample, and a search trajectory as a tree."""

import pandas as pd
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
        df.drop(columns=["prompt", "question_key"]),
        "samples",
        height=320,
        column_config={"completion": st.column_config.TextColumn(width="large")},
    )
    sample = _pick_sample(df)
    if sample is not None:
        _sample_detail(store, sample)
    _tree_section(store, sample)


def _pick_sample(df):
    """The sample to read, kept in the URL by its identity (run, model, question key, index), so a link opens the
    same sample however many runs were added since."""
    if df.empty:
        st.query_params.pop("sample", None)
        return None
    refs = [views.sample_ref(r.run_id, r.model, r.question_key, r.sample_idx) for r in df.itertuples()]
    labels = {
        ref: f"{r.question_id} #{r.sample_idx} · {r.model} · {'·' if _absent(r.correct) else '✓' if r.correct else '✗'}"
        for ref, r in zip(refs, df.itertuples())
    }
    sel.from_url("sample", refs[0], options=refs)
    ref = st.selectbox("Read a sample", refs, format_func=labels.__getitem__, key="sample")
    sel.to_url("sample")
    return df.iloc[refs.index(ref)]


def _sample_detail(store, row) -> None:
    with st.container(border=True):
        m1, m2, m3, m4 = st.columns(4)
        m1.metric("Answer", "—" if _absent(row["answer"]) else str(row["answer"]))
        m2.metric("Correct", "—" if _absent(row["correct"]) else "yes" if row["correct"] else "no")
        m3.metric("Grader score", "—" if _absent(row["score"]) else f"{row['score']:.2f}")
        tokens = row["completion_tokens"]
        m4.metric(
            "Completion tokens",
            "not recorded" if _absent(tokens) else int(tokens),
            help="an imported run whose format holds no token counts" if _absent(tokens) else None,
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


def _absent(value) -> bool:
    """A NULL cell, whichever way pandas holds it (None, NaN, pd.NA of a nullable column)."""
    return bool(pd.isna(value))


POSITIONAL_TREE = (
    "This link names its tree by position (tree={raw}), which shifts as runs are added, so it is ignored; the tree "
    "shown follows the chosen sample. Links made now name the tree itself."
)


def _tree_section(store, sample) -> None:
    """The search tree of the chosen sample's question (the trees of its question come first and a new sample
    brings its own), kept in the URL by identity (run, model, strategy, question key, configuration)."""
    st.subheader("Search trajectory")
    trees = views.tree_choices(store)
    if trees.empty:
        st.info(
            "No search trees in this store yet: search strategies (beam search, lookahead, ...) store every node here."
        )
        return
    raw = st.query_params.get("tree")
    if raw is not None and raw.isdigit() and "tree" not in st.session_state:  # a link from before identities
        del st.query_params["tree"]
        st.caption(POSITIONAL_TREE.format(raw=raw))
    ours = views.trees_of_sample(trees, sample) if sample is not None else trees.iloc[0:0]
    first = set(ours["ref"])
    order = list(ours["ref"]) + [r for r in trees["ref"] if r not in first]
    follows = None if sample is None else views.sample_ref(*sample[["run_id", "model", "question_key", "sample_idx"]])
    if follows != st.session_state.get("_tree_follows", follows) and len(ours):
        st.session_state["tree"] = order[0]  # another sample was chosen: its question's tree
    st.session_state["_tree_follows"] = follows
    sel.from_url("tree", order[0], options=order)
    labels = dict(zip(trees["ref"], trees["label"]))
    ref = st.selectbox("Tree", order, format_func=labels.__getitem__, key="tree")
    sel.to_url("tree")
    if sample is not None:
        st.caption(
            f"{len(ours)} search tree(s) answered this sample's question ({sample['question_id']}); they come first."
            if len(ours)
            else f"No search answered this sample's question ({sample['question_id']}); every stored tree is listed."
        )
    c = trees[trees["ref"] == ref].iloc[0]
    nodes = views.tree_nodes(store, c["run_id"], c["model"], c["strategy"], c["config"], c["question_id"])
    st.caption(f"config: `{c['config']}`")
    charts.chart(charts.search_tree_figure(nodes), "search-tree")
    path = views.selected_path(nodes)
    if len(path):
        st.markdown("**The selected answer's path, step by step** (root to ★)")
        for r in path.itertuples():
            score = "no score" if r.step_score != r.step_score else f"score {r.step_score:.3f}"
            st.markdown(f"Step {r.depth} · node {r.node_id} · {score}")
            st.code(r.step_text or "(empty)", language=None, wrap_lines=True)
    st.markdown("**Nodes of this tree** (every step's text)")
    charts.table(
        nodes[["node_id", "parent_id", "depth", "step_text", *[c for c in nodes.columns if c not in _NODE_FIRST]]],
        "search-tree-nodes",
        height=260,
        column_config={"step_text": st.column_config.TextColumn("step text", width="large")},
    )


_NODE_FIRST = ("node_id", "parent_id", "depth", "step_text")


frame.run_page(
    "samples",
    "Samples",
    body,
    caption="Filter and read samples: prompt, completion, answer, grade, verifier scores.",
    share=True,
)
