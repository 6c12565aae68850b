"""Nothing in sk-mnist can be made to run code from data: a check of the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sk_mnist

PACKAGE = Path(sk_mnist.__file__).resolve().parent
ROOT = PACKAGE.parent
SOURCES = sorted(
    [
        *PACKAGE.rglob("*.py"),
        *(ROOT / "benchmarks").rglob("*.py"),
        *(ROOT / "examples").rglob("*.py"),
    ]
)
FORBIDDEN_KEYWORDS = {
    ("allow_pickle", True),
    ("safe_mode", False),
    ("trusted", True),
    ("shell", True),
}
FORBIDDEN_CALLS = {
    "eval",
    "exec",
    "pickle.load",
    "pickle.loads",
    "joblib.load",
    "os.system",
}


def _name(node):
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return ""


def _violations(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if _name(node.func) in FORBIDDEN_CALLS:
            yield f"{path.name}:{node.lineno}: calls {_name(node.func)}"
        for keyword in node.keywords:
            if (
                isinstance(keyword.value, ast.Constant)
                and (keyword.arg, keyword.value.value) in FORBIDDEN_KEYWORDS
            ):
                yield f"{path.name}:{node.lineno}: {keyword.arg}={keyword.value.value}"


def test_the_checker_finds_what_it_looks_for(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import numpy, subprocess, keras\n"
        "numpy.load('x', allow_pickle=True)\n"
        "keras.saving.load_model('m', safe_mode=False)\n"
        "subprocess.run('ls', shell=True)\n"
        "skops.io.load('m.skops', trusted=True)\n"
        "eval('1')\n"
    )
    assert len(list(_violations(bad))) == 5


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_pickle_loading_unsafe_keras_eval_or_shell(path):
    assert list(_violations(path)) == []


def test_every_skops_load_names_its_trusted_types():
    calls = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and _name(node.func).endswith(
                ("skops.io.load", "skops.io.loads")
            ):
                keywords = {k.arg: k.value for k in node.keywords}
                calls.append((path.name, keywords.get("trusted")))
    assert calls, "expected sk_mnist.load to call skops.io.loads"
    for name, trusted in calls:
        assert trusted is not None, f"{name} calls skops without trusted="
        assert not isinstance(trusted, ast.Constant), f"{name}: trusted={trusted.value}"


def test_every_numpy_load_refuses_pickles():
    calls = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and _name(node.func).endswith("np.load"):
                keywords = {
                    k.arg: getattr(k.value, "value", None) for k in node.keywords
                }
                calls.append((path.name, keywords.get("allow_pickle")))
    assert calls, "expected the npz reader to call np.load"
    assert all(allow is False for _, allow in calls), calls
