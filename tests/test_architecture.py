"""The package's shape, read from the source (no imports run): the layers import only downward, Streamlit stays in
the UI layer and the pages, modules and pages stay small, and nothing patches the import path.

Layers (``ttft/<layer>/``, plus ``ttft/options.py``), each allowed to import itself and the ones listed:

=========  =========================================
options    (nothing of ttft)
core       options
runs       core, options
engine     runs, core, options
views      runs, core, options
cli        engine, runs, core, options
ui         views, engine, runs, core, options
=========  =========================================

``ttft/__init__.py`` and ``ttft/__main__.py`` may import cli; ``app.py`` and ``pages/`` anything. Every module may
read the package's own attributes (``from ttft import __version__``). Every import counts: inside functions, under
``if TYPE_CHECKING:``, relative ones, and ``importlib.import_module("ttft....")`` with a literal name.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "ttft"

#: what each layer may import besides itself
ALLOWED: dict[str, frozenset[str]] = {
    "options": frozenset(),
    "core": frozenset({"options"}),
    "runs": frozenset({"core", "options"}),
    "engine": frozenset({"runs", "core", "options"}),
    "views": frozenset({"runs", "core", "options"}),
    "cli": frozenset({"engine", "runs", "core", "options"}),
    "ui": frozenset({"views", "engine", "runs", "core", "options"}),
    "package": frozenset({"cli"}),  # ttft/__init__.py, ttft/__main__.py
}
LAYER_PACKAGES = ("core", "runs", "engine", "views", "cli", "ui")
#: where Streamlit may be imported (besides app.py and pages/)
STREAMLIT_LAYERS = frozenset({"ui"})
MAX_MODULE_LINES = 600
MAX_PAGE_LINES = 150  # a page has fewer lines than this
#: files allowed to name PYTHONPATH, and why
PYTHONPATH_EXEMPT = {
    "tests/test_packaging.py": "installs the built wheel into a temporary folder and puts that folder on the path",
    "tests/test_architecture.py": "this check names what it looks for",
}


@dataclass(frozen=True)
class Import:
    file: str  # relative to the repository root
    line: int
    name: str  # absolute dotted name; for `from X import y`, X.y

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.name}"


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def ttft_modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def app_files() -> list[Path]:
    return [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]


def module_name(path: Path) -> str:
    """Dotted name of a module file under the repository root (``ttft/core/data.py`` -> ``ttft.core.data``)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_in(source: str, file: str, module: str, is_package: bool = False) -> list[Import]:
    """Every import in ``source`` (a module named ``module``), wherever it stands, as absolute names."""
    tree = ast.parse(source, filename=file)
    here = module.split(".") if is_package else module.split(".")[:-1]  # the package relative imports start from
    out: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend(Import(file, node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = here[: len(here) - (node.level - 1)] if node.level - 1 <= len(here) else []
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            out.extend(Import(file, node.lineno, f"{base}.{a.name}" if a.name != "*" else base) for a in node.names)
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            f = node.func
            fname = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if fname in ("import_module", "__import__"):
                out.append(Import(file, node.lineno, node.args[0].value))
    return out


def file_imports(path: Path) -> list[Import]:
    return imports_in(path.read_text(encoding="utf-8"), rel(path), module_name(path), path.name == "__init__.py")


def layer_of_module(name: str) -> str | None:
    """The layer a ttft module name belongs to; None outside ttft; ``?name`` for a ttft module in no layer."""
    parts = name.split(".")
    if parts[0] != "ttft":
        return None
    if len(parts) == 1 or parts[1] == "__main__":
        return "package"
    head = parts[1]
    if head == "options" or head in LAYER_PACKAGES:
        return head
    if (PKG / f"{head}.py").exists() or (PKG / head).is_dir():
        return f"?ttft.{head}"
    return "package"  # an attribute of ttft/__init__.py (__version__)


def layer_of_file(path: Path) -> str:
    return layer_of_module(module_name(path)) or "?"


# --------------------------------------------------------------------------- the scanner itself


def test_the_scanner_finds_imports_inside_functions_relative_ones_and_import_module():
    src = (
        "import os\n"
        "from ttft.core import data\n"
        "from . import metrics\n"
        "from ..engine.commands import launch\n"
        "def f():\n"
        "    import streamlit as st\n"
        "    from ttft import __version__\n"
        "    importlib.import_module('ttft.ui.widgets')\n"
        "if TYPE_CHECKING:\n"
        "    from ttft.views.grids import render\n"
    )
    found = sorted((i.line, i.name) for i in imports_in(src, "ttft/runs/jobs.py", "ttft.runs.jobs"))
    assert found == [
        (1, "os"),
        (2, "ttft.core.data"),
        (3, "ttft.runs.metrics"),
        (4, "ttft.engine.commands.launch"),
        (6, "streamlit"),
        (7, "ttft.__version__"),
        (8, "ttft.ui.widgets"),
        (10, "ttft.views.grids.render"),
    ]
    pkg = imports_in("from . import widgets\nfrom .forms import x\n", "ttft/ui/__init__.py", "ttft.ui", True)
    assert [i.name for i in pkg] == ["ttft.ui.widgets", "ttft.ui.forms.x"]
    assert [
        layer_of_module(n)
        for n in ("ttft", "ttft.__version__", "ttft.options.ConfigError", "ttft.core.data", "ttft.ui", "numpy")
    ] == ["package", "package", "options", "core", "ui", None]


# --------------------------------------------------------------------------- the rules


def test_every_module_of_ttft_is_in_a_layer():
    stray = [rel(p) for p in ttft_modules() if layer_of_file(p).startswith("?")]
    assert not stray, (
        "modules in no layer (put them in one of ttft/{" + ",".join(LAYER_PACKAGES) + "}/):\n" + "\n".join(stray)
    )


def test_layers_import_only_downward():
    violations = []
    for path in ttft_modules():
        src_layer = layer_of_file(path)
        if src_layer.startswith("?"):
            continue  # reported by test_every_module_of_ttft_is_in_a_layer
        allowed = ALLOWED[src_layer] | {src_layer, "package"}
        for imp in file_imports(path):
            target = layer_of_module(imp.name)
            if target is None or target in allowed:
                continue
            violations.append(
                f"{imp}  ({src_layer} -> {target.lstrip('?')}; {src_layer} may import "
                f"{', '.join(sorted(ALLOWED[src_layer])) or 'nothing of ttft'})"
            )
    assert not violations, f"{len(violations)} import(s) against the layer order:\n" + "\n".join(violations)


def test_streamlit_only_in_the_ui_layer_and_the_pages():
    violations = [
        str(imp)
        for path in ttft_modules()
        if layer_of_file(path) not in STREAMLIT_LAYERS
        for imp in file_imports(path)
        if imp.name.split(".")[0] == "streamlit"
    ]
    assert not violations, "streamlit imported outside ttft/ui, pages/ and app.py:\n" + "\n".join(violations)
    # the pages and app.py are where it belongs: they do import it
    assert any(imp.name.split(".")[0] == "streamlit" for p in app_files() for imp in file_imports(p))


def test_no_module_of_ttft_is_over_600_lines():
    big = [
        f"{rel(p)}: {n} lines"
        for p in ttft_modules()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    ]
    assert not big, f"modules over {MAX_MODULE_LINES} lines (split them by concept):\n" + "\n".join(big)


def test_every_page_is_under_150_lines():
    pages = sorted((ROOT / "pages").glob("*.py"))
    assert pages
    big = [
        f"{rel(p)}: {n} lines"
        for p in pages
        if (n := len(p.read_text(encoding="utf-8").splitlines())) >= MAX_PAGE_LINES
    ]
    assert not big, f"pages of {MAX_PAGE_LINES} lines or more (move the widgets to ttft/ui):\n" + "\n".join(big)


#: sys.path.insert/append/extend, sys.path[...] = , sys.path = / +=, site.addsitedir
SYS_PATH_EDIT = re.compile(
    r"\bsys\.path\s*(\.\s*(insert|append|extend)\b|\[[^\]]*\]\s*=(?!=)|\s*\+?=(?!=))"
    r"|\bsite\.addsitedir\b"
)


def test_nothing_sets_pythonpath_and_the_library_never_edits_sys_path():
    """ttft is installed (`pip install -e .` in `make install`): no PYTHONPATH in ttft/, tests/ or bench/, and no
    sys.path edits in ttft/ or tests/."""
    hits = []
    for folder in ("ttft", "tests", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            name = rel(path)
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if "PYTHONPATH" in line and name not in PYTHONPATH_EXEMPT:
                    hits.append(f"{name}:{n}: {line.strip()}")
                if folder != "bench" and SYS_PATH_EDIT.search(line) and name != rel(Path(__file__)):
                    hits.append(f"{name}:{n}: {line.strip()}")
    assert not hits, "import path patches (ttft is installed; none is needed):\n" + "\n".join(hits)
