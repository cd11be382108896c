"""The README's examples run and its links stay inside the repository."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# a fenced block opens with ```python at the start of a line and closes at the next ```
PYTHON_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
# [text](target) and ![alt](target); the target ends at whitespace or the closing parenthesis
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)[^)]*\)")
# `folder/file.ext` spans name files of the repository (placeholders such as <name> excepted)
PATH_SPAN = re.compile(r"`([\w./-]+/[\w.-]+\.(?:md|py|toml|png|csv))`")


def readme_text():
    return README.read_text(encoding="utf-8")


def python_blocks(text):
    """The ```python blocks of ``text``, in order."""
    return PYTHON_BLOCK.findall(text)


def heading_anchors(text):
    """GitHub's anchors of the Markdown headings of ``text``."""
    anchors = set()
    for line in text.splitlines():
        match = re.match(r"#+\s+(.*)", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            anchors.add(slug.replace(" ", "-"))
    return anchors


def test_block_extraction_finds_fenced_python_only():
    text = "a\n```python\nx = 1\n```\n```bash\nls\n```\n```python\ny = x\n```\n"
    assert python_blocks(text) == ["x = 1\n", "y = x\n"]


def test_readme_has_python_blocks():
    assert len(python_blocks(readme_text())) >= 4


def test_every_relative_link_resolves_inside_the_repository():
    text = readme_text()
    anchors = heading_anchors(text)
    targets = LINK.findall(text) + PATH_SPAN.findall(text)
    assert targets
    for target in targets:
        if re.match(r"[a-z]+://", target):
            continue
        if target.startswith("#"):
            assert target[1:] in anchors, f"README links to a missing heading: {target}"
            continue
        path = (ROOT / target.split("#")[0]).resolve()
        assert path.is_relative_to(ROOT), f"README links outside the repository: {target}"
        assert path.exists(), f"README links to a missing file: {target}"


@pytest.mark.slow
def test_readme_python_blocks_run_in_order_in_one_namespace(tmp_path, monkeypatch):
    # files the examples write land in tmp_path; the examples need no network
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "readme"}
    for i, block in enumerate(python_blocks(readme_text()), start=1):
        code = compile(block, f"README.md python block {i}", "exec")
        exec(code, namespace)  # the project's own README, not untrusted input
    assert {"fit", "fits", "cmp", "more", "elpd"} <= namespace.keys()
