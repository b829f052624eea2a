"""The project's own promises: README commands, CI prerequisites, settings table."""

import re
from pathlib import Path

import config

ROOT = Path(__file__).resolve().parent.parent


def test_readme_opens_with_demo_and_test_commands():
    head = (ROOT / "README.md").read_text().splitlines()[:12]
    text = "\n".join(head)
    assert text.index("make demo") < text.index("make test")


def test_ci_installs_exactly_the_readme_prerequisites():
    readme = re.findall(r"^\s*(apt-get install -y .+)$", (ROOT / "README.md").read_text(), re.M)
    ci = re.findall(r"apt-get install -y .+$", (ROOT / ".ci/run").read_text(), re.M)
    assert len(readme) == 1, "the README lists its prerequisites in exactly one apt-get line"
    assert ci == readme
    assert "make test" in (ROOT / ".ci/run").read_text()


# Programs the suite runs (besides Python and bash), and the Debian package of each. mount(8)
# (the disk-full scenario) is in every Debian system, priority required.
PROGRAMS = {"chromium": "chromium", "curl": "curl", "ps": "procps", "promtool": "prometheus", "initdb": "postgresql"}


def test_the_readme_apt_line_installs_every_program_the_suite_runs():
    (line,) = re.findall(r"^\s*apt-get install -y (.+)$", (ROOT / "README.md").read_text(), re.M)
    packages = set(line.split())
    files = [*(ROOT / "tests").glob("*.py"), *(ROOT / "tests/helpers").glob("*.py"), ROOT / "cli-test.sh"]
    sources = "\n".join(p.read_text() for p in files)
    for program, package in PROGRAMS.items():
        assert re.search(rf"[\"'/ (]{program}[\"' ]", sources), f"the suite no longer runs {program}: drop it here"
        assert package in packages, f"the README's apt-get line lacks {package} (for {program})"
    makefile = (ROOT / "Makefile").read_text()
    assert f"apt-get install -y {line}" in makefile, "make test's prerequisite check names the README's line"


def test_readme_settings_table_lists_every_setting():
    readme = (ROOT / "README.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| `(PANFM_\w+)` \|", readme, re.M))
    for f in config.declared():
        assert f.name in rows, f"README settings table lacks {f.name}"
        assert rows[f.name] == "PANFM_" + f.name.upper()
    assert set(rows) == {f.name for f in config.declared()}, "README lists a setting that does not exist"
