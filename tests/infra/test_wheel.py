"""The product's wheel holds the product only: no sandbox package and no module that imports moto."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(source: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_product_wheel_has_no_sandbox_and_no_moto(tmp_path: Path) -> None:
    # --no-build-isolation: setuptools comes from the venv (pinned in requirements-dev.txt), so no network here
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("esm_medic-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        top = {n.split("/", 1)[0] for n in names}
        assert {t for t in top if not t.endswith(".dist-info")} == {"esm_medic"}, top
        assert not [n for n in names if "sandbox" in n.split("/")[1:2] or "moto" in n], names
        modules = [n for n in names if n.endswith(".py")]
        assert len(modules) > 50  # the whole product is there
        offenders = {
            n: sorted(m for m in _imports(zf.read(n).decode()) if m.split(".")[0] in ("moto", "esm_medic_sandbox"))
            for n in modules
        }
        assert not {n: m for n, m in offenders.items() if m}
        assert "esm_medic/catalogue/catalogue.json" in names
