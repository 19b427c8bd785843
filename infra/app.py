"""CDK entry point: ``cdk synth`` / ``cdk deploy`` run ``python -m infra.app``."""

from __future__ import annotations

import os

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.member_stack import EsmMedicMemberStack
from infra.nag import acknowledge
from infra.settings import load as load_settings
from infra.stack import EsmMedicStack, _context


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
    env = cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION"))
    settings = load_settings(_context(app))  # raises SettingsError listing every invalid value
    member_ctx = {k: app.node.try_get_context(k) for k in ("CentralAccount", "ExternalId", "OrganizationId")}
    member_settings = load_settings({**_context(app), **{k: v for k, v in member_ctx.items() if v}})
    stack = EsmMedicStack(app, "EsmMedic", install_deps=install_deps, settings=settings, env=env)
    member = EsmMedicMemberStack(app, "EsmMedicMember", settings=member_settings, env=env)
    if nag:
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))  # type: ignore[attr-defined]
        acknowledge(stack)
        acknowledge(member)
    return app


if __name__ == "__main__":
    import sys

    from infra.settings import SettingsError

    try:
        build_app().synth()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None
