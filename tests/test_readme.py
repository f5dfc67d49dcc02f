"""The README's set-up commands and CI must not drift apart."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section, flags=re.S)


def test_readme_has_exactly_two_setup_commands():
    commands = readme_commands()
    assert len(commands) == 2
    run_app, run_tests = commands
    assert run_app.rstrip().endswith("main.py") and "\n" not in run_app
    assert "pytest" in run_tests and "QT_QPA_PLATFORM=offscreen" in run_tests and "\n" not in run_tests
    # both set up through the bootstrap script, which installs what the OS lacks first
    assert run_app.startswith("sh packaging/bootstrap.sh app && ")
    assert run_tests.startswith("sh packaging/bootstrap.sh tests && ")


def test_ci_has_no_install_step_of_its_own():
    ci = (REPO / ".ci" / "run").read_text()
    assert "apt-get" not in ci and "pip install" not in ci


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (REPO / ".ci" / "run").read_text()
    assert readme_commands()[1] in ci.splitlines()


def test_research_use_notice_is_present():
    assert "Research use only — not a medical device" in (REPO / "README.md").read_text()


def test_version_is_defined_once():
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject
    assert not re.search(r'^version\s*=\s*"', pyproject, flags=re.M)


def test_readme_lists_the_classify_csv_columns():
    from engine.core.records import CSV_COLUMNS

    text = (REPO / "README.md").read_text()
    header = ",".join(CSV_COLUMNS)
    assert f"`{header}`" in text
