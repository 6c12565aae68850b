"""Sphinx configuration of the sk-mnist documentation."""

import logging
import os
import sys
from pathlib import Path

import sk_mnist

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

project = "sk-mnist"
author = "the sk-mnist developers"
copyright = "2026, the sk-mnist developers"
release = version = sk_mnist.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py"]
autosummary_generate = True
# The metadata-routing setters scikit-learn generates, and the mixins'
# methods, are documented by scikit-learn itself.
autodoc_default_options = {
    "members": True,
    "inherited-members": False,
    "exclude-members": ",".join(
        [
            "set_fit_request",
            "set_partial_fit_request",
            "set_score_request",
            "set_predict_request",
            "set_predict_proba_request",
            "set_transform_request",
            "set_inverse_transform_request",
            "set_output",
            "score",
            "fit_transform",
        ]
    ),
}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

html_theme = "pydata_sphinx_theme"
html_title = f"sk-mnist {release}"
html_static_path = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}

# The examples run on real MNIST (SK_MNIST_DATA or the download). CI sets
# SK_MNIST_EXAMPLES_QUICK=1 so that they train on fewer images for fewer
# epochs; the numbers the guide quotes come from the full build.
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "show_memory": False,
    "within_subsection_order": "FileNameSortKey",
}
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow's Python logger notes that each new model traces its functions
# again; the examples build several models on purpose.
logging.getLogger("tensorflow").setLevel(logging.ERROR)
