"""scripts/suite_times.py: the suite's time per tier and its slowest tests, from the JUnit XML scripts/test.sh keeps."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

XML = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="4">
<testcase classname="tests.unit.test_a" name="test_fast" time="0.5"/>
<testcase classname="tests.unit.test_a" name="test_param[x]" time="1.5"/>
<testcase classname="tests.integration.test_b" name="test_slow" time="90.0"><skipped/></testcase>
<testcase classname="tests.ui.test_c" name="test_page" time="30.0"/>
</testsuite></testsuites>"""


def _run(*args):
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "suite_times.py"), *map(str, args)], capture_output=True, text=True
    )


def test_it_sums_tiers_and_ranks_the_slowest(tmp_path):
    (tmp_path / "base.xml").write_text(XML)
    out = _run(tmp_path / "base.xml", "--slowest", "2")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "tier          tests  minutes",
        "integration       1      1.5",
        "ui                1      0.5",
        "unit              2      0.0",
        "all               4      2.0",
        "slowest 2 (seconds, fixtures' setup and teardown included):",
        "   90.0  tests/integration/test_b.py::test_slow",
        "   30.0  tests/ui/test_c.py::test_page",
        "RESULT suite_test_minutes=2.0 tests=4 slowest_test_s=90.0",
    ]


def test_a_missing_file_is_named(tmp_path):
    out = _run(tmp_path / "nowhere.xml")
    assert out.returncode == 2 and "nowhere.xml: no such file; allowed: JUnit XML files" in out.stderr
