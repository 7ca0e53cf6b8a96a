"""The Markdown documents render as written: every code fence is closed, none opened inside another."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


def fence_problems(text: str) -> list[str]:
    """Unclosed fences, and fence lines with a language inside an open block (CommonMark reads
    those as code, so the block runs on past where the author meant it to end)."""
    problems, open_at, opener = [], 0, ""
    for number, line in enumerate(text.splitlines(), start=1):
        m = FENCE.match(line)
        if not m:
            continue
        marks, info = m.group(1), m.group(2).strip()
        if not opener:
            open_at, opener = number, marks
        elif marks[0] == opener[0] and len(marks) >= len(opener):
            if info:  # meant to open a block; a longer fence around the block allows that
                problems.append(f"line {number}: {line.strip()!r} inside the block opened on line {open_at}")
            else:
                opener = ""
    if opener:
        problems.append(f"line {open_at}: code block never closed")
    return problems


def test_the_checker_finds_a_fence_opened_inside_another():
    assert fence_problems("```bash\na\n```\n") == []
    assert fence_problems("````md\n```bash\n```\n````\n") == []
    assert fence_problems("```bash\na\n```bash\nb\n```\n") == [
        "line 3: '```bash' inside the block opened on line 1"
    ]
    assert fence_problems("text\n```bash\na\n") == ["line 2: code block never closed"]


@pytest.mark.parametrize("name", ["README.md", "FIDELITY.md"])
def test_code_fences_balance(name):
    assert fence_problems((ROOT / name).read_text()) == []
