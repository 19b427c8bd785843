from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Synthesise the app once per session, with cdk-nag (findings make synth raise). The dependency layer is not
    built (no PyPI access needed); the code asset is."""
    os.environ["PATH"] = f"{ROOT / 'node_modules' / '.bin'}{os.pathsep}{os.environ['PATH']}"
    from infra.app import build_app

    outdir = tmp_path_factory.mktemp("cdk.out")
    app = build_app(str(outdir), install_deps=False, nag=True)
    assembly = app.synth()
    template_path = outdir / "EsmMedic.template.json"
    return {
        "outdir": outdir,
        "template_path": template_path,
        "template": json.loads(template_path.read_text()),
        "assembly": assembly,
    }


@pytest.fixture(scope="session")
def template(synth: dict[str, Any]) -> dict[str, Any]:
    return synth["template"]
