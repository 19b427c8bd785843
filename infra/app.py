"""CDK entry point: ``cdk synth`` / ``cdk deploy`` run ``python -m infra.app``."""

from __future__ import annotations

import os

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.nag import acknowledge
from infra.stack import EsmMedicStack


def build_app(
    outdir: str | None = None,
    *,
    install_deps: bool | None = None,
    nag: bool = True,
    context: dict[str, object] | None = None,
) -> cdk.App:
    app = cdk.App(outdir=outdir, context=context) if outdir else cdk.App(context=context)
    if install_deps is None:
        install_deps = os.environ.get("ESM_MEDIC_BUILD_DEPS", "1") != "0"
    stack = EsmMedicStack(
        app,
        "EsmMedic",
        install_deps=install_deps,
        env=cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")),
    )
    if nag:
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))  # type: ignore[attr-defined]
        acknowledge(stack)
    return app


if __name__ == "__main__":
    build_app().synth()
