"""Package the Lambda code without Docker: one asset for every function, one layer for third-party dependencies.

- code asset: ``functions/esm_medic`` and caches excluded, plus ``runbooks/`` copied to ``esm_medic/_runbooks`` so
  tickets can quote them in Lambda. The sandbox is a separate distribution (``sandbox/``) and is never in it.
- dependency layer (``python/``): the runtime dependencies that the Lambda Python runtime lacks (boto3 is in the
  runtime), installed by pip for the Lambda platform (manylinux, x86_64, CPython 3.13) with wheels only. Building it
  needs PyPI; ``make asset`` does it. Without it (``install_deps=False``, as in synth-only tests) the layer holds a
  marker file only and the stack is still complete.

Both are content-addressed: ``build/asset-<hash of the sources>`` and ``build/layer-<hash of the requirements>``.
A build goes to a private temporary folder first and is renamed into place, so synth never deletes or rewrites a
folder another process may be reading, and two concurrent builds of the same content cannot race. Old folders are
left for ``make clean``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "functions" / "esm_medic"
RUNBOOKS = ROOT / "runbooks"
BUILD = ROOT / "build"
# [tracer]: with active tracing the handlers create a Powertools Tracer, which needs the X-Ray SDK
LAYER_REQUIREMENTS = (
    "aws-lambda-powertools[tracer,validation]==3.37.0",
    "jsonschema==4.26.0",
    "requests==2.34.2",
    "slack-sdk==3.48.0",
    "pyahocorasick==2.3.1",
)
LAMBDA_PYTHON = "3.13"
LAMBDA_PLATFORM = "manylinux2014_x86_64"
EXCLUDE_DIRS = {"__pycache__", ".mypy_cache"}


def _source_files() -> list[tuple[Path, Path]]:
    """(source, path inside the asset) for every file the code asset holds, in a stable order."""
    files: list[tuple[Path, Path]] = []
    for src in sorted(PACKAGE.rglob("*")):
        rel = src.relative_to(PACKAGE)
        if src.is_file() and not any(p in EXCLUDE_DIRS for p in rel.parts) and src.suffix not in (".pyc", ".pyo"):
            files.append((src, Path("esm_medic") / rel))
    if RUNBOOKS.is_dir():
        for src in sorted(RUNBOOKS.rglob("*.md")):
            files.append((src, Path("esm_medic") / "_runbooks" / src.relative_to(RUNBOOKS)))
    return files


def code_hash() -> str:
    digest = hashlib.sha256()
    for src, rel in _source_files():
        digest.update(str(rel).encode() + b"\0" + src.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _publish(final: Path, fill: Callable[[Path], None]) -> Path:
    """Build into a temporary sibling of ``final`` with ``fill`` and rename it into place (once per content)."""
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        fill(tmp)
        try:
            os.rename(tmp, final)
        except OSError:  # another build of the same content won the rename: use it
            if not final.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def build_code_asset(build_dir: Path | None = None) -> Path:
    """The code asset folder for the current sources (built when missing); returns its path."""

    def fill(tmp: Path) -> None:
        for src, rel in _source_files():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, tmp / rel)

    return _publish((build_dir or BUILD) / f"asset-{code_hash()}", fill)


def _requirements_hash(install_deps: bool) -> str:
    key = "\n".join((*LAYER_REQUIREMENTS, LAMBDA_PLATFORM, LAMBDA_PYTHON, str(install_deps)))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def build_dependency_layer(build_dir: Path | None = None, install_deps: bool = True) -> Path:
    """The layer folder (``python/`` inside) for the pinned requirements; with ``install_deps=False`` only a marker
    file, for synth-only runs that must not need PyPI."""

    def fill(tmp: Path) -> None:
        python_dir = tmp / "python"
        python_dir.mkdir(parents=True)
        if not install_deps:
            (python_dir / "ESM_MEDIC_LAYER_NOT_BUILT.txt").write_text(
                "Synth-only build: run `make asset` to install the Lambda runtime dependencies into this layer.\n"
            )
            return
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--target",
                str(python_dir),
                "--platform",
                LAMBDA_PLATFORM,
                "--implementation",
                "cp",
                "--python-version",
                LAMBDA_PYTHON,
                "--only-binary=:all:",
                "--upgrade",
                *LAYER_REQUIREMENTS,
            ],
            check=True,
        )
        for junk in python_dir.glob("**/__pycache__"):
            shutil.rmtree(junk, ignore_errors=True)

    return _publish((build_dir or BUILD) / f"layer-{_requirements_hash(install_deps)}", fill)


if __name__ == "__main__":  # `python -m infra.asset [--no-deps]`
    deps = "--no-deps" not in sys.argv
    print(build_code_asset())
    print(build_dependency_layer(install_deps=deps))
