"""Sphinx configuration of the softbayes documentation (``make docs``).

Nothing is fetched from the network while building: no intersphinx inventories, data only from
installed packages or simulated, the examples gallery executed locally on small data.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import softbayes

# gallery_setup.py (the gallery's order and figure scraper) sits here
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Figures of the gallery are rendered without a display; the examples run on both cores.
os.environ.setdefault("MPLBACKEND", "Agg")
# formulae's own deprecation noise is not ours to act on (the test suite filters it too).
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"formulae\..*")

project = "softbayes"
author = "the softbayes authors"
copyright = "2026, the softbayes authors"
version = release = softbayes.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "auto_examples/*.ipynb"]
root_doc = "index"

# -- API reference -------------------------------------------------------------------------
autosummary_generate = True
autosummary_ignore_module_all = False  # a module page lists exactly its __all__
# a module page links the names documented at the top level instead of repeating them
autosummary_context = {"toplevel": sorted(softbayes.__all__)}
# softbayes.bambi needs Bambi, an optional dependency that pins another formulae range than
# this environment's: its page is built against a stand-in module
autodoc_mock_imports = ["bambi"]
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
autodoc_member_order = "bysource"
numpydoc_show_class_members = False  # members come from the class template, once
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- Examples gallery ----------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # plot_*.py run at build time; large_n.py is the full-size command-line script, shown as is
    "filename_pattern": r"/plot_",
    "within_subsection_order": "gallery_setup.ExampleOrder",
    "download_all_examples": False,
    # every build runs every example, so a change in the package cannot hide behind a cache
    "run_stale_examples": True,
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "remove_config_comments": True,
    "reset_modules": ("matplotlib",),
    # softbayes' pyplot-free figures first: the matplotlib scraper closes pyplot's figures
    "image_scrapers": ("gallery_setup.scrape_figures", "matplotlib"),
    # the examples print what they show; a trailing ``ax.set(...)`` is not output
    "capture_repr": (),
    "matplotlib_animations": False,
    "show_memory": False,
    "min_reported_time": 1,
    # no computation-times page: it loads its table scripts from a CDN
    "write_computation_times": False,
}

# -- HTML ----------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"softbayes {release}"
html_static_path: list[str] = []
html_theme_options = {
    "navigation_depth": 2,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_show_sourcelink = False
