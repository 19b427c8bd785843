"""Package the Lambda code without Docker: one asset for every function, one layer for third-party dependencies.

- code asset (``build/asset``): ``functions/esm_medic`` minus the sandbox (moto is never deployed) and caches,
  plus ``runbooks/`` copied to ``esm_medic/_runbooks`` so tickets can quote them in Lambda.
- dependency layer (``build/layer/python``): the runtime dependencies that the Lambda Python runtime lacks
  (boto3 is in the runtime), installed by pip for the Lambda platform (manylinux, x86_64, CPython 3.13) with wheels
  only. Building it needs PyPI; ``make asset`` does it. Without it (``install_deps=False``, as in synth-only tests)
  the layer directory holds a marker file only and the stack is still complete.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
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
    "pyahocorasick==2.3.1",
)
LAMBDA_PYTHON = "3.13"
LAMBDA_PLATFORM = "manylinux2014_x86_64"
EXCLUDE_DIRS = {"sandbox", "__pycache__", ".mypy_cache"}


def build_code_asset(out: Path | None = None) -> Path:
    """Copy the package (without the sandbox) and the runbooks into ``out``; returns ``out``."""
    out = out or BUILD / "asset"
    if out.exists():
        shutil.rmtree(out)
    dest = out / "esm_medic"
    for src in PACKAGE.rglob("*"):
        rel = src.relative_to(PACKAGE)
        if any(part in EXCLUDE_DIRS for part in rel.parts) or src.suffix in (".pyc", ".pyo"):
            continue
        target = dest / rel
        if src.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    if RUNBOOKS.is_dir():
        shutil.copytree(RUNBOOKS, dest / "_runbooks", ignore=shutil.ignore_patterns("*.pyc"))
    return out


def _requirements_hash() -> str:
    return hashlib.sha256("\n".join((*LAYER_REQUIREMENTS, LAMBDA_PLATFORM, LAMBDA_PYTHON)).encode()).hexdigest()[:16]


def build_dependency_layer(out: Path | None = None, install_deps: bool = True) -> Path:
    """Install the runtime dependencies for Lambda into ``out/python`` (skipped when already built for the same
    requirements). With ``install_deps=False`` only a marker is written, for synth-only runs."""
    out = out or BUILD / "layer"
    stamp = out / ".requirements-hash"
    python_dir = out / "python"
    if install_deps and stamp.exists() and stamp.read_text() == _requirements_hash():
        return out
    if out.exists():
        shutil.rmtree(out)
    python_dir.mkdir(parents=True)
    if not install_deps:
        (python_dir / "ESM_MEDIC_LAYER_NOT_BUILT.txt").write_text(
            "Synth-only build: run `make asset` to install the Lambda runtime dependencies into this layer.\n"
        )
        return out
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
    stamp.write_text(_requirements_hash())
    return out


if __name__ == "__main__":  # `python -m infra.asset [--no-deps]`
    deps = "--no-deps" not in sys.argv
    print(build_code_asset())
    print(build_dependency_layer(install_deps=deps))
