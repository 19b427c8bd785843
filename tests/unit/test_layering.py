"""Import rules from the developers' brief, checked on the source (AST), so a violation fails CI:

- the catalogue and the classifier import no boto3/botocore;
- only ``esm_medic.aws`` imports boto3 (everything else goes through the adapter); elsewhere botocore is imported
  only for its exception classes;
- logic never imports handlers or the CLI;
- production code never imports moto or the sandbox package ``esm_medic_sandbox`` (the CLI's ``sandbox`` and
  ``demo`` commands load it by name through ``cli.common.load_sandbox``, which explains how to install it).
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "functions" / "esm_medic"


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module imported, is_module_level) for every import in a file; relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    rel = path.relative_to(PKG.parent).with_suffix("")
    package_parts = list(rel.parts[:-1])
    out: list[tuple[str, bool]] = []
    top_level = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in top_level) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names = [f"{mod}.{a.name}" for a in node.names] if not node.level and mod == "esm_medic" else [mod]
            out += [(m, id(node) in top_level) for m in names]
    return out


def _files(*exclude: str) -> list[Path]:
    return [p for p in PKG.rglob("*.py") if not any(part in exclude for part in p.relative_to(PKG).parts)]


def _module(path: Path) -> str:
    return ".".join(path.relative_to(PKG.parent).with_suffix("").parts)


def test_catalogue_and_classifier_import_no_boto3():
    targets = [*(PKG / "catalogue").rglob("*.py"), PKG / "classify.py", PKG / "steps.py", PKG / "esm.py"]
    for path in targets:
        for mod, _ in _imports(path):
            assert not mod.startswith(("boto3", "botocore")), f"{path.name} imports {mod}"


def test_only_the_adapter_imports_boto3():
    allowed = {"esm_medic.aws"}
    for path in _files("sandbox"):
        if _module(path) in allowed:
            continue
        for mod, top in _imports(path):
            if mod.startswith("boto3"):
                raise AssertionError(f"{_module(path)} imports {mod}: go through esm_medic.aws")
            if mod.startswith("botocore") and not mod.startswith("botocore.exceptions"):
                # exception classes may be imported to catch them; clients, config, sessions only in the adapter
                assert not top, f"{_module(path)} imports {mod} at module level: go through esm_medic.aws"


def test_logic_never_imports_handlers_or_cli():
    for path in _files("handlers", "cli", "sandbox"):
        for mod, _ in _imports(path):
            assert not mod.startswith(("esm_medic.handlers", "esm_medic.cli")), f"{_module(path)} imports {mod}"


def test_production_code_never_imports_moto_or_the_sandbox():
    lazy_ok: set[str] = set()
    assert not (PKG / "sandbox").exists(), "the sandbox lives in its own package (sandbox/esm_medic_sandbox)"
    for path in _files("sandbox"):
        name = _module(path)
        for mod, top in _imports(path):
            bad = mod.startswith(("moto", "esm_medic_sandbox"))
            if not bad:
                continue
            assert name in lazy_ok, f"{name} imports {mod}"
            assert not top, f"{name} imports {mod} at module level: import it inside the command"
