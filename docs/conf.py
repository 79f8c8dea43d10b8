"""Sphinx configuration of the celltransformer documentation.

The build needs no network: there is no intersphinx, tutorial notebooks are rendered with the
outputs stored in them (never re-executed), and the one executed page, the data format, runs on
the package's synthetic tissue (or on the osmFISH copy of the test data, where it is at hand).
"""

from __future__ import annotations

from datetime import date
from importlib.metadata import metadata
from pathlib import Path

HERE = Path(__file__).parent
TUTORIALS = HERE / "tutorials"  # a link to the repository's tutorials/ folder
TUTORIAL_SUFFIXES = (".ipynb", ".md")

_metadata = metadata("celltransformer")
project = _metadata["Name"]
author = _metadata["Author"] or "celltransformer developers"
release = version = _metadata["Version"]
copyright = f"{date.today().year}, {author}"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx_copybutton",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints", "jupyter_execute"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
master_doc = "index"

autosummary_generate = True
autodoc_member_order = "groupwise"
autodoc_inherit_docstrings = False  # overridden Lightning and scvi-tools hooks would bring their own markup
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_param = True

myst_enable_extensions = ["colon_fence", "dollarmath", "amsmath", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # notebooks keep the outputs committed with them
nb_execution_timeout = 120
nb_execution_raise_on_error = True
nb_merge_streams = True

html_theme = "sphinx_book_theme"
html_title = project
html_static_path: list[str] = []
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}


def has_tutorials() -> bool:
    """Whether the tutorials folder holds at least one notebook."""
    return TUTORIALS.is_dir() and any(path.suffix in TUTORIAL_SUFFIXES for path in TUTORIALS.iterdir())


def drop_empty_tutorial_toctree(app, docname: str, source: list[str]) -> None:
    """Replace the tutorials' glob toctree by a note while there is no notebook to list.

    Sphinx warns about a glob that matches nothing, and the build treats warnings as errors.
    """
    if docname != "tutorials" or has_tutorials():
        return
    intro, _, _ = source[0].partition("```{toctree}")
    source[0] = intro + "The tutorial notebooks are on their way.\n"


def setup(app) -> None:
    app.connect("source-read", drop_empty_tutorial_toctree)
