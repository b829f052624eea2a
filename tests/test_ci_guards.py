"""Under CI=true the suite cannot pass by skipping: missing prerequisites fail, and so does a short collection.

Each test runs pytest on a small suite in a temporary folder that uses this suite's conftest.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SUITE = '''
from conftest import require, requires

def test_one():
    pass

def test_two():
    pass

@requires(False, "the frobnicator (apt-get install -y frobnicator)")
def test_needs_a_missing_tool():
    pass

def test_needs_a_missing_build():
    require(False, "the widget build: run `make widgets`")
'''


def run_pytest(folder: Path, *args: str, ci: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI" and not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(ROOT)
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", *args],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def small_suite(tmp_path: Path, floor: int, body: str = SUITE) -> Path:
    """A folder with this suite's conftest, a floor and the tests of BODY; return the tests folder."""
    (tmp_path / "pytest.ini").write_text("[pytest]\ntestpaths = tests\n")
    tests = tmp_path / "tests"
    tests.mkdir()
    shutil.copy(Path(__file__).with_name("conftest.py"), tests / "conftest.py")
    (tests / "ci_floor.txt").write_text(f"# tests a full CI run must collect\n{floor}\n")
    (tests / "test_small.py").write_text(body)
    return tests


def test_a_missing_prerequisite_is_a_skip_on_a_developers_machine(tmp_path):
    small_suite(tmp_path, floor=4)
    result = run_pytest(tmp_path, ci=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed, 2 skipped" in result.stdout
    assert "missing prerequisite: the frobnicator" in result.stdout


def test_a_missing_prerequisite_fails_under_ci_naming_it(tmp_path):
    small_suite(tmp_path, floor=4)
    result = run_pytest(tmp_path, ci=True)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 2 passed, 1 error" in result.stdout  # the mark fails at setup: an error
    assert "missing prerequisite under CI=true: the frobnicator (apt-get install -y frobnicator)" in result.stdout
    assert "missing prerequisite under CI=true: the widget build: run `make widgets`" in result.stdout


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist-n-2"])
def test_a_full_ci_run_that_collects_fewer_tests_than_the_floor_fails(tmp_path, workers):
    small_suite(tmp_path, floor=5, body=SUITE.replace("@requires(False", "@requires(True").replace(
        "require(False", "require(True"))
    result = run_pytest(tmp_path, *workers, ci=True)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "4 passed" in result.stdout
    assert "CI=true: 4 tests collected, fewer than the floor of 5 in ci_floor.txt" in result.stdout


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist-n-2"])
def test_a_full_ci_run_at_the_floor_passes(tmp_path, workers):
    small_suite(tmp_path, floor=4, body=SUITE.replace("@requires(False", "@requires(True").replace(
        "require(False", "require(True"))
    result = run_pytest(tmp_path, *workers, ci=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "floor" not in result.stdout


@pytest.mark.parametrize("selection", [["-k", "one"], ["tests/test_small.py"], ["tests/test_small.py::test_one"]],
                         ids=["keyword", "file", "node-id"])
def test_the_floor_only_counts_full_runs(tmp_path, selection):
    small_suite(tmp_path, floor=99, body=SUITE.replace("@requires(False", "@requires(True").replace(
        "require(False", "require(True"))
    result = run_pytest(tmp_path, *selection, ci=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "floor" not in result.stdout


def test_the_floor_is_a_count_at_most_what_the_suite_collects():
    from conftest import ci_floor

    floor = ci_floor()
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q"],
        cwd=ROOT, env={k: v for k, v in os.environ.items() if k != "CI"},
        capture_output=True, text=True, timeout=120, check=False,
    ).stdout
    count = int(re.search(r"^(\d+) tests? collected", collected, re.M).group(1))
    assert 0 < floor <= count, f"tests/ci_floor.txt says {floor}, the suite collects {count}"


def test_no_test_skips_except_through_require():
    offenders = []
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if path.name == "conftest.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"pytest\.(skip\(|importorskip\(|mark\.skip(if)?\b)", line):
                offenders.append(f"{path.name}:{n}: {line.strip()}")
    assert not offenders, "skip through conftest.require / requires (a failure under CI=true):\n" + "\n".join(offenders)
