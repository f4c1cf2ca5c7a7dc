"""The library's layers import one way only, and ctxrec never imports streamlit."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ctxrec"
# lowest first: a module may import from its own layer and the layers before it
LAYERS = ["data", "text", "inspect", "rank", "evaluation", "sequence", "llm", "tune",
          "experiments"]
TOP = len(LAYERS)  # cli, bench, viz, export, server_policy and the package's __init__


def _layer(module: str) -> int:
    """The layer of a dotted module name under ctxrec."""
    head = module.split(".")[0]
    return LAYERS.index(head) if head in LAYERS else TOP


def _imports(path: Path) -> list[tuple[str, int]]:
    """(imported module under ctxrec, line) for every import in the file, lazy ones included."""
    here = list(path.relative_to(PACKAGE).with_suffix("").parts)[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            elif node.module and node.module.startswith("ctxrec"):
                target = node.module.removeprefix("ctxrec").lstrip(".")
            else:
                if node.module and node.module.split(".")[0] == "streamlit":
                    found.append(("streamlit", node.lineno))
                continue
            found.append((target, node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in ("ctxrec", "streamlit"):
                    found.append((alias.name.removeprefix("ctxrec").lstrip(".") or "",
                                  node.lineno))
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_downward_only(path):
    own = _layer(".".join(path.relative_to(PACKAGE).with_suffix("").parts))
    upward = [(target, line) for target, line in _imports(path)
              if target == "streamlit" or (target and _layer(target) > own)]
    assert not upward, f"{path.name} imports from a higher layer or streamlit: {upward}"


def test_every_module_sits_in_a_layer_or_is_named_top_level():
    top_level = {p.stem for p in PACKAGE.glob("*.py")}
    assert top_level == {"__init__", "__main__", "bench", "cli", "export", "server_policy", "viz"}
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"} == \
        set(LAYERS)
