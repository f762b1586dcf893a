"""The README stays short and docs/ holds the rest: every setting and command is documented,
and every link between the pages resolves."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))


def test_the_readme_is_short():
    assert len(README.read_text().splitlines()) <= 200


def test_every_setting_read_from_the_environment_is_in_the_settings_table():
    settings_py = (ROOT / "align_workflow" / "settings.py").read_text()
    variables = set(re.findall(r"env_\w+\(\s*\"([A-Z0-9_]+)\"", settings_py))
    assert len(variables) > 30, variables
    operations = (ROOT / "docs" / "operations.md").read_text()
    table = {
        name
        for line in operations.splitlines()
        if line.startswith("| `")
        for name in re.findall(r"`([A-Z0-9_]+)`", line.split("|")[1])
    }
    assert sorted(variables - table) == []


def test_every_management_command_is_documented():
    commands = {p.stem for p in ROOT.glob("align_workflow/*/management/commands/*.py") if p.stem != "__init__"}
    assert commands
    operations = (ROOT / "docs" / "operations.md").read_text()
    assert sorted(c for c in commands if f"| `{c}" not in operations) == []


def test_links_between_the_pages_resolve():
    broken = []
    for page in [README, *DOCS]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert broken == []


def test_the_readme_links_every_page_of_docs():
    text = README.read_text()
    assert [p.name for p in DOCS if f"(docs/{p.name})" not in text] == []
