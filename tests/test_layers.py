"""Layers point down only (docs/design.md): every import in the package, module-level or inside a
function, goes from a layer to one it is allowed to use. A new upward import fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "scanarchive"

# Each module's layer, by its longest matching name prefix.
LAYER_OF = {
    "scanarchive": "base",  # __init__: the version only
    "scanarchive.errors": "base",
    "scanarchive.fsio": "base",
    "scanarchive.names": "base",
    "scanarchive.clock": "base",
    "scanarchive.tempdir": "base",
    "scanarchive.runner": "base",
    "scanarchive.hardening": "base",
    "scanarchive.sandbox": "base",
    "scanarchive.packagedata": "base",
    "scanarchive.crypto": "crypto",
    "scanarchive.audit": "formats",
    "scanarchive.ocr.document": "formats",
    "scanarchive.config": "config",
    "scanarchive.pages": "pages",
    "scanarchive.ocr": "ocr",
    "scanarchive.archive": "archive",
    "scanarchive.ingest": "ingest",
    "scanarchive.retention": "retention",
    "scanarchive.reading": "reading",
    "scanarchive.export": "export",
    "scanarchive.intake": "intake",
    "scanarchive.demo": "demo",
    "scanarchive.cli": "cli",
    "scanarchive.__main__": "cli",
}

BELOW_CONFIG = {"base", "crypto", "formats"}
STORAGE = BELOW_CONFIG | {"config", "archive"}
# What each layer may import besides itself. Siblings stay apart: the storage layer never
# imports an OCR engine or the page code, the OCR engines never touch the archive, and
# nothing but the command line (and __main__) imports the command line.
MAY_USE = {
    "base": set(),
    "crypto": {"base"},
    "formats": {"base"},
    "config": {"base", "crypto"},
    "pages": {"base", "config"},
    "ocr": BELOW_CONFIG | {"config", "pages"},
    "archive": BELOW_CONFIG | {"config"},
    "ingest": STORAGE | {"pages", "ocr"},
    "retention": STORAGE,
    "reading": STORAGE | {"ocr"},  # the OCR engines' dictionary, for fuzzy search
    "export": STORAGE,
    "intake": STORAGE | {"ingest"},
    "demo": STORAGE | {"pages", "reading"},
    "cli": set(LAYER_OF.values()),
}


def layer(module: str) -> str:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        found = LAYER_OF.get(".".join(parts[:n]))
        if found is not None:
            return found
    raise AssertionError(f"{module} is in no layer: add it to LAYER_OF and to docs/design.md")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """Every scanarchive module `path` imports, with its line, wherever the import statement is."""
    name = module_name(path)
    return imports_in(path.read_text(encoding="utf-8"), name if path.name == "__init__.py" else name.rpartition(".")[0])


def imports_in(source: str, package: str) -> list[tuple[int, str]]:
    tree = ast.parse(source)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "scanarchive"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "scanarchive":
                continue
            for alias in node.names:  # `from scanarchive.ocr import tesseract` imports the module scanarchive.ocr.tesseract
                candidate = f"{base}.{alias.name}"
                is_module = (PACKAGE.parent / Path(*candidate.split("."))).with_suffix(".py").exists() or (
                    PACKAGE.parent / Path(*candidate.split(".")) / "__init__.py"
                ).exists()
                found.append((node.lineno, candidate if is_module else base))
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_point_down(path: Path) -> None:
    here = layer(module_name(path))
    upward = [
        f"line {line}: {target} ({layer(target)})"
        for line, target in imports(path)
        if layer(target) != here and layer(target) not in MAY_USE[here]
    ]
    assert not upward, f"{module_name(path)} ({here}) may not import: " + "; ".join(upward)


def test_the_check_sees_an_upward_import() -> None:
    """The check itself can fail: a storage module importing an OCR engine inside a function, or the
    command line through a relative import, is caught."""
    source = "def f() -> None:\n    from scanarchive.ocr import tesseract\n    from ..cli import main\n"
    found = imports_in(source, "scanarchive.archive")
    assert found == [(2, "scanarchive.ocr.tesseract"), (3, "scanarchive.cli.main")]
    assert {layer(t) for _, t in found} & MAY_USE["archive"] == set()


def test_every_layer_is_documented() -> None:
    design = (PACKAGE.parent / "docs" / "design.md").read_text(encoding="utf-8")
    for name in set(LAYER_OF.values()):
        assert f"`{name}`" in design, f"layer {name} is not described in docs/design.md"
