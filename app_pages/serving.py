"""Serving: what `ttc serve` answered, per policy version (each request is its own `served` run; this page groups
them by the policy that answered, backend/serving/log.py), the FLOPs each charged against its budget, and the
accuracy of the answers a user labelled, per predicted bin and configuration."""

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app_pages import _charts as charts
from app_pages import _page as frame
from app_pages import _selection as sel
from app_pages._store import store_dir
from backend import visual as look
from backend.serving import log as served

EMPTY = (
    "Nothing has been served into this store yet. Freeze a policy from a study with `ttc policy freeze`, then "
    "`ttc serve --policy policy.json --store {store}`: every request it answers appears here."
)
LABELS = {"correct": True, "incorrect": False, "unlabelled": None}


def body(store) -> None:
    log = served.served_log(store) if store is not None else pd.DataFrame()
    if log.empty:
        st.info(EMPTY.format(store=store_dir()), icon=":material/dns:")
        return
    versions = list(dict.fromkeys(log.sort_values("time", ascending=False)["policy"]))
    sel.from_url("policy", versions[0], options=versions)  # a shared link opens the same policy's requests
    policy = st.selectbox("Policy version", versions, key="policy", disabled=len(versions) == 1)
    sel.to_url("policy")
    st.caption(f"Policy version `{policy}`")
    log = log[log["policy"] == policy].reset_index(drop=True)
    _totals(served.totals(log).iloc[0])
    _spend(log)
    _accuracy(log)
    _requests(log)
    _label_form(store, log)


def _totals(t: pd.Series) -> None:
    c = st.columns(6)
    c[0].metric("Requests", int(t["requests"]), help="answers (choices, `n`) counted separately below")
    c[1].metric("FLOPs charged", look.eng(float(t["flops"])))
    share = t["flops_per_budget"]
    c[2].metric("FLOPs / budget", "—" if pd.isna(share) else f"{share:.0%}", help="over requests that gave a budget")
    c[3].metric("Tokens (prompt / completion)", f"{int(t['prompt_tokens'])} / {int(t['completion_tokens'])}")
    c[4].metric("Latency p50 / p95", f"{t['latency_p50_s']:.2f} / {t['latency_p95_s']:.2f} s")
    c[5].metric("Labelled answers", f"{int(t['labelled'])} of {int(t['answers'])}")


def _spend(log: pd.DataFrame) -> None:
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=log["time"],
            y=log["flops"],
            mode="markers",
            name="FLOPs charged",
            text=log["configuration"] + " · bin " + log["bin"].astype(str),
        )
    )
    budgeted = log[log["budget_flops"].notna()]
    if len(budgeted):
        fig.add_trace(go.Scatter(x=budgeted["time"], y=budgeted["budget_flops"], mode="markers", name="budget"))
    fig.update_yaxes(type="log", title="FLOPs")
    fig.update_xaxes(title="time")
    fig.update_layout(meta=dict(x="time", y="flops"))
    charts.style_figure(fig, title="FLOPs per answer against its budget", height=360)
    charts.chart(fig, "serving-spend")


def _accuracy(log: pd.DataFrame) -> None:
    st.subheader("Labelled accuracy")
    acc = served.labelled_accuracy(log)
    if acc.empty:
        st.caption("No answer is labelled yet: mark answers correct or incorrect below.")
        return
    drifting = acc[acc["drift"].eq(True)]
    for r in drifting.itertuples():
        st.warning(
            f"Drift: bin {r.bin}, {r.configuration} at {r.cell_budget_flops:.3g} FLOPs — {r.correct} of {r.labelled} "
            f"labelled answers correct ({r.accuracy:.2f}, 95% interval {r.low:.2f} to {r.high:.2f}), outside what the "
            f"study promised ({r.held_out_accuracy:.2f}"
            + ("" if r.promise_low != r.promise_low else f", band {r.promise_low:.2f} to {r.promise_high:.2f}")
            + ")."
        )
    two = {"format": "%.2f"}
    charts.table(
        acc.drop(columns="policy"),
        "serving-accuracy",
        column_config={
            "accuracy": st.column_config.NumberColumn(**two),
            "low": st.column_config.NumberColumn("95% low", **two),
            "high": st.column_config.NumberColumn("95% high", **two),
            "held_out_accuracy": st.column_config.NumberColumn("promised (held out)", **two),
            "promise_low": st.column_config.NumberColumn("band low", **two),
            "promise_high": st.column_config.NumberColumn("band high", **two),
        },
    )
    st.caption(
        "Over labelled answers only, per served cell (bin, configuration, budget); unlabelled answers count nowhere. "
        "Interval: 95% Wilson. Promised: the study's held-out accuracy of the cell and its bootstrap band, as the "
        "policy recorded them; drift when the labelled interval and the band do not overlap."
    )


def _requests(log: pd.DataFrame) -> None:
    st.subheader("Requests")
    shown = log[
        [
            "time",
            "question",
            "budget_flops",
            "flops",
            "bin",
            "configuration",
            "answer",
            "latency_s",
            "prompt_tokens",
            "completion_tokens",
            "correct",
            "run_id",
            "choice",
        ]
    ]
    charts.table(shown, "serving-requests")


def _label_form(store, log: pd.DataFrame) -> None:
    st.subheader("Label an answer")
    options = list(range(len(log)))

    def name(i: int) -> str:
        r = log.iloc[i]
        question = str(r["question"])[:60]
        return f"{r['time']} · {question} · answer {r['answer']!r}" + (
            f" (choice {r['choice']})" if r["choice"] else ""
        )

    with st.form("label"):
        i = st.selectbox("Answer", options, format_func=name, key="label_answer")
        mark = st.radio("Label", list(LABELS), horizontal=True, key="label_mark")
        saved = st.form_submit_button("Save label", key="label_save")
    if saved and i is not None:
        r = log.iloc[i]
        served.set_label(store, str(r["run_id"]), int(r["choice"]), LABELS[mark])
        st.toast(f"labelled {mark}")
        st.rerun()


frame.run_page(
    "serving",
    "Serving",
    body,
    needs_samples=False,
    caption="Requests `ttc serve` answered, per policy version; label answers to measure the policy's accuracy.",
)
