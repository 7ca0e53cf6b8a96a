"""The architecture rule: prep/ writes shards, train/ reads them, and neither imports the other."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize(
    "folder, forbidden",
    [
        ("prep", "babylm.train"),
        ("train", "babylm.prep"),
        ("shards", "babylm.prep"),
        ("shards", "babylm.train"),
    ],
)
def test_packages_do_not_import_each_other(folder, forbidden):
    offenders = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        bad = [m for m in imported_modules(path) if m == forbidden or m.startswith(forbidden + ".")]
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {', '.join(sorted(bad))}")
    assert not offenders, "\n".join(offenders)


def test_rule_checker_sees_imports(tmp_path):
    sample = tmp_path / "x.py"
    sample.write_text("import babylm.train.loader\nfrom babylm.prep import cc3m\nfrom . import sibling\n")
    assert imported_modules(sample) == {"babylm.train.loader", "babylm.prep"}


def test_no_bare_top_level_modules_installed():
    code = "import importlib.util as u; print([n for n in ('train', 'prep', 'shards') if u.find_spec(n)])"
    out = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("script", ["babylm-prep", "babylm-train"])
def test_console_scripts_have_help(script):
    exe = Path(sys.executable).parent / script
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True)
    assert "Usage:" in out.stdout


def test_every_cli_option_has_help_text():
    import click

    from babylm.prep.cli import main as prep_main
    from babylm.train.cli import main as train_main

    missing = []
    for group in (prep_main, train_main):
        for name, cmd in group.commands.items():
            if not (cmd.help or "").strip():
                missing.append(f"{group.name} {name}: command has no help")
            for param in cmd.params:
                if isinstance(param, click.Option) and not (param.help or "").strip():
                    missing.append(f"{group.name} {name} {param.opts[0]}")
    assert not missing, "options without help text:\n" + "\n".join(missing)
