"""The Run page's states: the form keeps its choices across pages, the live panel says what the worker is doing
(idle, running, cancelling), the labelled cancel turns into "Cancelling…", and a cancelled run's card says how many
samples it kept."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import text
from streamlit.testing.v1 import AppTest

from backend.config import ModelSpec, parse_spec
from backend.execution.execute import execute
from backend.execution.sampling import PreparedRun
from store import Store
from store.catalog import utcnow
from tests.fakes import FAKE_MODEL, FakeTask, ScriptedEngine
from tests.ui.conftest import APP

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
RUN_PAGE = "app_pages/run.py"


def _run_page(monkeypatch, root) -> AppTest:
    monkeypatch.setenv("TTC_STORE", str(root))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    return at.switch_page(RUN_PAGE).run()


def _texts(at: AppTest, kind: str) -> list[str]:
    return [str(e.proto.text if kind == "progress" else e.value) for e in at.get(kind)]


def _running_run(store: Store, name: str, total: int = 8) -> str:
    spec = parse_spec(
        {"name": name, "models": ["gemma-3-270m"], "task": {"kind": "humaneval", "size": 1}, "samples_per_question": 8}
    )
    run_id = spec.run_id()
    store.upsert_run(run_id, name, spec.model_dump(mode="json"), total, "running")
    now = utcnow()
    fresh = (datetime.fromisoformat(now) + timedelta(hours=1)).isoformat()  # stays fresh however slow the test
    with store.catalog.begin() as db:  # catalog rows only: what a worker writes, without a process
        db.execute(
            text(
                "INSERT INTO workers(worker_id, pid, host, started_at, heartbeat_at, current_run_id)"
                " VALUES ('box-4242-aaaaaa', 4242, 'box', :now, :fresh, :r)"
            ),
            {"now": now, "fresh": fresh, "r": run_id},
        )
    return run_id


def test_the_form_keeps_its_choices_across_pages_and_in_the_url(monkeypatch, populated_store):
    at = _run_page(monkeypatch, populated_store)
    assert at.multiselect(key="run_models").value == ["qwen2.5-coder-0.5b-instruct"]  # the default model
    at.multiselect(key="run_models").set_value(["gemma-3-270m"]).run()
    at.number_input(key="spq").set_value(3).run()
    at.text_input(key="run_name").input("kept").run()
    assert str(at.query_params["run_models"]) == "gemma-3-270m" and str(at.query_params["spq"]) == "3"
    at.switch_page("app_pages/coverage.py").run()  # a page with a "models" selection of its own
    assert not at.exception, [e.value for e in at.exception]
    at.switch_page(RUN_PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.multiselect(key="run_models").value == ["gemma-3-270m"]
    assert at.number_input(key="spq").value == 3 and at.text_input(key="run_name").value == "kept"


def test_a_new_session_reads_the_forms_choices_from_the_url(monkeypatch, tmp_path):
    monkeypatch.setenv("TTC_STORE", str(tmp_path / "fresh"))
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"run_models": ["gemma-3-270m"], "spq": "5", "run_name": "from-link"})
    at.run()
    at.switch_page(RUN_PAGE).run()
    assert at.multiselect(key="run_models").value == ["gemma-3-270m"]
    assert at.number_input(key="spq").value == 5 and at.text_input(key="run_name").value == "from-link"


def test_the_header_says_running_and_cancel_turns_it_into_cancelling(monkeypatch, tmp_path):
    store = Store.open(tmp_path / "store")
    run_id = _running_run(store, "live")
    at = _run_page(monkeypatch, store.root)
    assert not at.exception, [e.value for e in at.exception]
    assert any(t.startswith("Worker box-4242: running live · 0/8 samples") for t in _texts(at, "info")), (
        _texts(at, "info") + _texts(at, "success") + _texts(at, "warning") + _texts(at, "progress")
    )
    row = next(t for t in _texts(at, "progress") if run_id in t)
    assert f"{run_id}` · running · 0/8 samples" in row
    at.button(key=f"cancel_{run_id}").click().run()
    assert store.get_run(run_id)["cancel_requested"] == 1
    assert any(t.startswith("Worker box-4242: cancelling live") for t in _texts(at, "info"))
    assert f"{run_id}` · cancelling · 0/8" in next(t for t in _texts(at, "progress") if run_id in t)
    waiting = at.button(key=f"cancelling_{run_id}")
    assert waiting.label == "Cancelling…" and waiting.disabled
    assert not any(b.key == f"cancel_{run_id}" for b in at.button)


def test_an_idle_worker_says_idle(monkeypatch, tmp_path):
    store = Store.open(tmp_path / "store")
    run_id = _running_run(store, "over")
    store.finish_run(run_id, "cancelled")  # ended; its worker has not beaten since: not "running" any more
    at = _run_page(monkeypatch, store.root)
    assert any(t.startswith("Worker box-4242: idle") for t in _texts(at, "success"))
    assert not any("running" in t or "cancelling" in t for t in _texts(at, "info"))


def test_a_cancelled_runs_card_says_how_many_samples_it_kept(monkeypatch, tmp_path):
    store = Store.open(tmp_path / "store")
    task = FakeTask(2)
    spec = parse_spec(dict(name="partial", models=["scripted"], task=dict(kind="humaneval"), samples_per_question=2))
    prepared = PreparedRun(spec, spec.run_id(), task, task.questions(), [(ModelSpec(name="scripted"), FAKE_MODEL)])
    execute(prepared, store, engine_factory=lambda m, o: ScriptedEngine([], default="Answer: 1"))
    with store.catalog.begin() as db:  # as if cancelled with 4 of 10 samples finished
        db.execute(
            text("UPDATE runs SET status = 'cancelled', total_samples = 10 WHERE run_id = :r"), {"r": prepared.run_id}
        )
    at = _run_page(monkeypatch, store.root)
    assert not at.exception, [e.value for e in at.exception]
    card = next(t for t in _texts(at, "progress") if prepared.run_id in t)
    assert card.endswith(f"{prepared.run_id}` · cancelled · 4/10 samples kept")
    assert any(t.startswith("Cancelled: 4 finished samples kept;") for t in _texts(at, "caption"))


def test_a_run_that_ends_between_the_two_reads_is_drawn_as_ended_without_a_cancel_button(monkeypatch, tmp_path):
    """The panel lists active runs from the catalog, then reads each one's progress: a run that finished in between
    used to keep its "Cancel run" button under a "done" line for one refresh (seen in the e2e screenshot)."""
    import dataclasses

    import backend.execution.queue

    store = Store.open(tmp_path / "store")
    run_id = _running_run(store, "ends")
    real = backend.execution.queue.progress

    def finished(store, rid, *a, **kw):  # the catalog row said running; by the progress read it is done
        p = real(store, rid, *a, **kw)
        return None if p is None else dataclasses.replace(p, status="done", done=p.total)

    monkeypatch.setattr(backend.execution.queue, "progress", finished)
    at = _run_page(monkeypatch, tmp_path / "store")
    assert any(f"{run_id}` · done · 8/8 samples" in t for t in _texts(at, "progress")), _texts(at, "progress")
    assert not [b for b in at.button if b.label == "Cancel run"]
