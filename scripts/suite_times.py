"""Where the test suite's time goes, from the JUnit XML files `scripts/test.sh` leaves in .test-results/: tests and
minutes per tier (the folder under tests/), then the slowest tests, each with its fixtures' setup and teardown
(pytest's default JUnit duration). BENCHMARKS.md quotes its output, stored under bench/results/.

    python scripts/suite_times.py .test-results/base.xml .test-results/vllm.xml > bench/results/suite.txt
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path


def cases(path: Path) -> list[tuple[str, float]]:
    """(pytest node id, seconds) of every test case in a JUnit XML file."""
    root = ET.parse(path).getroot()
    out = []
    for case in root.iter("testcase"):
        module = case.get("classname", "")
        file = module.replace(".", "/") + ".py" if module else "?"
        out.append((f"{file}::{case.get('name')}", float(case.get("time") or 0.0)))
    return out


def summary(paths: list[Path], slowest: int = 15) -> str:
    found = [c for p in paths for c in cases(p)]
    if not found:
        raise SystemExit(f"no test case in {', '.join(map(str, paths))}")
    count, seconds = Counter(), Counter()
    for node, s in found:
        parts = node.split("/")
        tier = parts[1] if len(parts) > 2 and parts[0] == "tests" else "other"
        count[tier] += 1
        seconds[tier] += s
    total = sum(seconds.values())
    lines = [f"{'tier':12s} {'tests':>6s} {'minutes':>8s}"]
    lines += [f"{t:12s} {count[t]:6d} {seconds[t] / 60:8.1f}" for t, _ in seconds.most_common()]
    lines.append(f"{'all':12s} {len(found):6d} {total / 60:8.1f}")
    lines.append(f"slowest {slowest} (seconds, fixtures' setup and teardown included):")
    ranked = sorted(found, key=lambda c: -c[1])[:slowest]
    lines += [f"{s:7.1f}  {node}" for node, s in ranked]
    lines.append(f"RESULT suite_test_minutes={total / 60:.1f} tests={len(found)} slowest_test_s={ranked[0][1]:.1f}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("xml", nargs="+", type=Path, help="JUnit XML files (pytest --junitxml)")
    parser.add_argument("--slowest", type=int, default=15, help="how many of the slowest tests to list")
    args = parser.parse_args(argv)
    for p in args.xml:
        if not p.is_file():
            parser.error(f"{p}: no such file; allowed: JUnit XML files that scripts/test.sh wrote to .test-results/")
    sys.stdout.write(summary(args.xml, args.slowest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
