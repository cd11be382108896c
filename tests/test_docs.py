"""The documentation's API reference covers every public name, and its sources stay buildable."""

import ast
import importlib.util
import re
from pathlib import Path

import pytest

import softbayes

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"

# an autosummary directive, its options, a blank line, then its indented entries
AUTOSUMMARY = re.compile(
    r"^\.\. autosummary::[ \t]*\n((?:[ \t]+:[\w-]+:.*\n)*)[ \t]*\n((?:[ \t]+\S.*\n|[ \t]*\n)*)",
    re.M,
)
CURRENTMODULE = re.compile(r"^\.\. currentmodule::[ \t]*(\S+)[ \t]*$", re.M)


def autosummary_entries(text):
    """``(current module or None, entry)`` for every entry of every autosummary block."""
    entries = []
    for match in AUTOSUMMARY.finditer(text):
        modules = CURRENTMODULE.findall(text[: match.start()])
        current = modules[-1] if modules else None
        for line in match.group(2).splitlines():
            if line.strip():
                entries.append((current, line.strip()))
    return entries


def test_entry_parser_reads_blocks_and_their_module():
    text = (
        ".. currentmodule:: pkg\n\n.. autosummary::\n   :toctree: generated\n\n   a\n   b\n\n"
        "Text\n\n.. autosummary::\n\n   c\n"
    )
    assert autosummary_entries(text) == [("pkg", "a"), ("pkg", "b"), ("pkg", "c")]
    assert autosummary_entries("no directive here\n") == []


def api_names():
    entries = autosummary_entries((DOCS / "api.rst").read_text(encoding="utf-8"))
    assert entries, "docs/api.rst has no autosummary entries"
    assert {module for module, _ in entries} == {"softbayes"}
    return [name for _, name in entries]


def test_every_public_name_is_in_the_api_reference():
    names = api_names()
    missing = sorted(set(softbayes.__all__) - set(names))
    assert not missing, f"names of softbayes.__all__ missing from docs/api.rst: {missing}"
    assert len(names) == len(set(names)), "a name is listed twice in docs/api.rst"


def test_every_api_entry_is_a_public_name():
    extra = sorted(set(api_names()) - set(softbayes.__all__))
    assert not extra, f"docs/api.rst lists names that are not in softbayes.__all__: {extra}"


def module_entries():
    entries = autosummary_entries((DOCS / "modules.rst").read_text(encoding="utf-8"))
    assert all(module is None for module, _ in entries)
    return [name for _, name in entries]


def test_module_reference_lists_documented_softbayes_modules():
    modules = module_entries()
    assert "softbayes.backend.executor" in modules
    for name in modules:
        assert name.startswith("softbayes."), name
        spec = importlib.util.find_spec(name)
        assert spec is not None, f"docs/modules.rst lists a missing module: {name}"
        # read, not imported: softbayes.bambi needs Bambi, an optional dependency
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), f"{name} has no docstring to document"
        assigned = {t.id for node in tree.body if isinstance(node, ast.Assign)
                    for t in node.targets if isinstance(t, ast.Name)}
        assert "__all__" in assigned, f"{name} has no __all__ to list"


def conf_value(name):
    """A literal assigned at the top level of docs/conf.py (read without running it)."""
    tree = ast.parse((DOCS / "conf.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise KeyError(name)


def test_build_fetches_nothing_and_runs_the_gallery():
    extensions = conf_value("extensions")
    # intersphinx downloads other projects' inventories at build time
    assert "sphinx.ext.intersphinx" not in extensions
    assert {"numpydoc", "sphinx_gallery.gen_gallery", "sphinx.ext.autosummary"} <= set(extensions)
    gallery = conf_value("sphinx_gallery_conf")
    assert (DOCS / gallery["examples_dirs"]).resolve() == EXAMPLES
    assert conf_value("html_theme") == "pydata_sphinx_theme"


EXAMPLE_FILES = sorted(EXAMPLES.glob("*.py"))


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[p.name for p in EXAMPLE_FILES])
def test_example_opens_with_a_gallery_title(path):
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")), clean=False)
    assert doc is not None, f"{path.name}: no docstring"
    lines = doc.strip("\n").splitlines()
    assert len(lines) >= 2 and set(lines[1]) == {"="}, f"{path.name}: no '====' title"
    assert len(lines[1]) >= len(lines[0]), f"{path.name}: title underline too short"


def test_gallery_has_the_five_examples():
    executed = [p.name for p in EXAMPLE_FILES if p.name.startswith("plot_")]
    assert len(executed) >= 5
    assert (EXAMPLES / "GALLERY_HEADER.rst").is_file()
