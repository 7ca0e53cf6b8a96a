"""README's Slurm section shows exactly the commands the Slurm tests run."""

from tests.slurm.helpers import README_LINES, ROOT


def test_readme_shows_the_commands_the_tests_run():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Slurm", 1)[1].split("\n## ", 1)[0]
    missing = [line for line in README_LINES if line not in section]
    assert not missing, f"README's Slurm section lacks: {missing}"
