"""`ttc report`: a study's figures written by a command, and README's and BENCHMARKS' marked sections kept equal to
what the command produces on the committed studies (examples/studies/)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from backend.cli import main
from backend.errors import SpecError
from backend.report import marked_sections, refresh, resolve_store_argument
from bench.synthetic_store import make_synthetic_store

ROOT = Path(__file__).resolve().parents[2]
MODEL = "qwen2.5-coder-0.5b-instruct"
MARKED = ["README.md", "BENCHMARKS.md"]


@pytest.fixture(scope="module")
def study_store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report") / "store"
    make_synthetic_store(root, n_questions=24, n_samples=8, seed=3)
    return root


def test_the_report_states_the_cli_study_figures(study_store, capsys):
    """Every figure of the headline and the table is the compute-optimal report's own number, formatted."""
    import pandas as pd

    assert main(["compute-optimal", "--store", str(study_store), "--n-bins", "3", "--model", MODEL]) == 0
    from io import StringIO

    report = pd.read_csv(StringIO(capsys.readouterr().out))
    assert main(["report", "--store", str(study_store), "--n-bins", "3", "--model", MODEL]) == 0
    md = capsys.readouterr().out
    top = report[report["bin"] == "all"].sort_values("budget_flops").iloc[-1]
    assert f"over all {int(top['questions'])} questions" in md
    assert f"{top['held_out_accuracy']:.2f} against {top['baseline_accuracy']:.2f}" in md
    assert f"a difference of {top['vs_baseline_difference']:+.2f}" in md
    assert f"p = {top['vs_baseline_p_value']:.2g}" in md
    rows = [line for line in md.splitlines() if re.match(r"\| (\d+|all) \(\d+\) \|", line)]
    assert len(rows) == len(report)  # one table row per bin × budget, 'all' included
    for line, (_, r) in zip(rows, report.iterrows()):
        assert line.startswith(f"| {r['bin']} ({int(r['questions'])}) |")
    assert "**Data quality**" in md and "cut at max_tokens" in md


def test_refresh_rewrites_only_marked_sections():
    text = "intro\n<!-- ttc report --store a --n-bins 2 -->\nstale 1\n<!-- /ttc report -->\nmiddle\n<!-- ttc report --store b -->\nstale 2\n<!-- /ttc report -->\nend\n"
    seen = []
    out = refresh(text, lambda args: seen.append(args) or f"fresh {args[1]}\n")
    assert seen == [["--store", "a", "--n-bins", "2"], ["--store", "b"]]
    assert out == (
        "intro\n<!-- ttc report --store a --n-bins 2 -->\nfresh a\n<!-- /ttc report -->\nmiddle\n"
        "<!-- ttc report --store b -->\nfresh b\n<!-- /ttc report -->\nend\n"
    )
    assert resolve_store_argument(["--store", "x/y", "--n-bins", "2"], Path("/r")) == [
        "--store",
        "/r/x/y",
        "--n-bins",
        "2",
    ]


def test_refresh_writes_the_file_and_a_bad_marker_is_a_typed_error(study_store, tmp_path, capsys):
    doc = tmp_path / "doc.md"
    shutil.copytree(study_store, tmp_path / "study")
    doc.write_text(
        f"# x\n<!-- ttc report --store study --n-bins 3 --model {MODEL} -->\nstale body\n<!-- /ttc report -->\n"
    )
    assert main(["report", "--refresh", str(doc)]) == 0
    assert "rewritten" in capsys.readouterr().err
    new = doc.read_text()
    assert "stale body" not in new and "**Headline**" in new
    assert main(["report", "--refresh", str(doc)]) == 0  # a second refresh changes nothing
    assert "unchanged" in capsys.readouterr().err and doc.read_text() == new
    doc.write_text("<!-- ttc report --store x --n-bins many -->\nstale body\n<!-- /ttc report -->\n")
    assert main(["report", "--refresh", str(doc)]) == SpecError("a", "b", "c").exit_code
    err = capsys.readouterr().err
    assert "error: <!-- ttc report ... -->: argument --n-bins: invalid int value: 'many'" in err
    assert doc.read_text().endswith("stale body\n<!-- /ttc report -->\n")  # nothing half written
    (tmp_path / "plain.md").write_text("no marker\n")
    assert main(["report", "--refresh", str(tmp_path / "plain.md")]) != 0
    assert "has no `<!-- ttc report ... -->` marker" in capsys.readouterr().err


@pytest.mark.parametrize("name", MARKED)
def test_marked_sections_equal_what_the_command_produces_on_the_committed_studies(name):
    """The figures of README and BENCHMARKS cannot go stale: each marked section is re-rendered from the committed
    study its marker names and must be byte-equal; the committed files stay untouched."""
    text = (ROOT / name).read_text()
    sections = marked_sections(text)
    assert sections, f"{name} has no `<!-- ttc report ... -->` section"
    from backend.cli import _marker_body

    for args, body in sections:
        fresh = _marker_body(args, ROOT)  # reads a temporary copy: the committed study is never opened in place
        assert fresh == body, (
            f"{name}: the section `<!-- ttc report {' '.join(args)} -->` differs from what the command produces; "
            f"run `ttc report --refresh {name}`"
        )


def test_a_plan_marker_prints_the_plan_from_the_study_runs_with_the_command_as_given(study_store, tmp_path, capsys):
    """`--plan SPEC` renders `ttc plan SPEC --pilot-store STORE` from the study's runs, headed by the command with the
    marker's own (relative) paths; without --store, or with a missing spec, it is a typed error naming --plan."""
    from backend.cli import _marker_body

    shutil.copytree(study_store, tmp_path / "study")
    shutil.copy(ROOT / "examples" / "compute_optimal.yaml", tmp_path / "spec.yaml")
    body = _marker_body(["--plan", "spec.yaml", "--store", "study"], tmp_path)
    assert body.startswith("```\n$ ttc plan spec.yaml --pilot-store study\nplan for spec.yaml on ")
    assert "questions needed" in body and body.endswith("```\n")
    assert main(["report", "--plan", str(tmp_path / "spec.yaml")]) == SpecError("a", "b", "c").exit_code
    assert "error: --plan: without --store" in capsys.readouterr().err
    assert main(["report", "--plan", str(tmp_path / "nope.yaml"), "--store", str(tmp_path / "study")]) != 0
    err = capsys.readouterr().err
    assert "error: --plan: " in err and "nope.yaml is not a file" in err


def test_a_bench_output_marker_quotes_the_result_lines_or_the_whole_stored_output(tmp_path):
    """`--bench-output FILE` quotes a benchmark's RESULT lines verbatim; `--bench-whole` every line (a per-budget table
    the benchmark printed); a file without a RESULT line (a crashed or cut run) is refused, naming --bench-output."""
    from backend.report import bench_output_markdown

    out = tmp_path / "b.txt"
    out.write_text("sampling: 3 to go\nbudget k=2: adaptive 0.5\nRESULT gain=0.1 [0.0, 0.2]\n")
    assert bench_output_markdown(out) == "```\nRESULT gain=0.1 [0.0, 0.2]\n```\n"
    whole = bench_output_markdown(out, whole=True)
    assert whole == "```\nsampling: 3 to go\nbudget k=2: adaptive 0.5\nRESULT gain=0.1 [0.0, 0.2]\n```\n"
    out.write_text("sampling: 3 to go\nbudget k=2: adaptive 0.5\n")
    for whole in (False, True):
        with pytest.raises(SpecError, match="--bench-output.*has no RESULT line"):
            bench_output_markdown(out, whole=whole)
    with pytest.raises(SpecError, match="is not a file"):
        bench_output_markdown(tmp_path / "missing.txt")
