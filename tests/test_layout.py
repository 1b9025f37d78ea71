"""The import rules the README states, checked on the source: imports flow one way.

kernels/ imports nothing of the package outside kernels/; the engine (function, ops, tensor, backend)
imports none of functional, nn, optim, serialization, viz or cli; nothing outside cli/ imports cli/.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tinygrad_attn"
ENGINE = ("function", "ops", "tensor", "backend")
ABOVE_ENGINE = ("functional", "nn", "optim", "serialization", "torch_bridge", "viz", "cli")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_imports(path: Path) -> set[str]:
    """Every tinygrad_attn module `path` imports, as dotted names (relative imports resolved)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "tinygrad_attn"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "tinygrad_attn":
                continue
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names}   # `from . import nn` imports tinygrad_attn.nn
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def _top(module: str) -> str:
    """The first component below the package: tinygrad_attn.kernels.fast -> kernels."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_sources_found():
    assert len(SOURCES) > 20 and any(p.parent.name == "cli" for p in SOURCES)


@pytest.mark.parametrize("path", [p for p in SOURCES if p.relative_to(PACKAGE).parts[0] == "kernels"],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_kernels_import_only_kernels(path):
    outside = {m for m in _package_imports(path) if _top(m) not in ("kernels",)}
    assert not outside, f"{path.name} imports {sorted(outside)}"


@pytest.mark.parametrize("name", ENGINE)
def test_engine_imports_nothing_above_it(name):
    above = {m for m in _package_imports(PACKAGE / f"{name}.py") if _top(m) in ABOVE_ENGINE}
    assert not above, f"{name}.py imports {sorted(above)}"


@pytest.mark.parametrize("path", [p for p in SOURCES if p.relative_to(PACKAGE).parts[0] != "cli"
                                  and p.name != "__main__.py"], ids=lambda p: str(p.relative_to(PACKAGE)))
def test_nothing_outside_cli_imports_cli(path):
    into_cli = {m for m in _package_imports(path) if _top(m) == "cli"}
    assert not into_cli, f"{path.relative_to(PACKAGE)} imports {sorted(into_cli)}"


def test_the_rule_checker_sees_relative_imports():
    """The checker itself: a relative import of cli from the package root is caught."""
    assert "tinygrad_attn.cli" in _package_imports(PACKAGE / "__main__.py")
    assert "tinygrad_attn.kernels.runtime" in _package_imports(PACKAGE / "kernels" / "__init__.py")
