"""Apply every sandbox patch to moto 5.2.5 in this process (idempotent), and the ESM status API.

Each patch lives in its own module, whose docstring says which moto gap it closes and how:

- :mod:`.patch_lambda`  Kafka ESMs (MSK + self-managed), ESM status overrides / provider, List pagination;
- :mod:`.patch_kafka`   ACTIVE clusters, CreateClusterV2 auth kept, GetBootstrapBrokers, ListNodes, SCRAM secrets;
- :mod:`.patch_iam`     SimulatePrincipalPolicy / SimulateCustomPolicy (via :mod:`.iam_sim`), lazy AWS managed
                        policies;
- :mod:`.patch_events`  EventBridge -> Step Functions / Lambda targets, Input / InputPath / InputTransformer,
                        DISABLED rules, TestEventPattern;
- :mod:`.patch_sfn`     CloudFormation DefinitionSubstitutions into the executing backend, unnamed executions,
                        JSONata via jsonata-python;
- :mod:`.patch_ec2`     ModifyVpcEndpoint PrivateDnsEnabled, DryRun, rule descriptions, endpoint pending /
                        deleting windows, DependencyViolation on a group still in use;
- :mod:`.patch_timing`  ESM Creating / Enabling / Disabling / Updating windows, Route 53 PENDING -> INSYNC (the
                        length of every window is :func:`esm_medic_sandbox.timing.delay`);
- :mod:`.patch_regions` an unknown region answered like AWS (400 InvalidSignatureException), not HTTP 500;
- :mod:`.patch_sts`     AssumeRole evaluates the role's trust policy (principal, sts:ExternalId, org), AccessDenied;
- :mod:`.patch_control` the ``/moto-api/esm-medic/...`` control routes (drive ESM status from another process).

In-process Lambda execution is separate: :mod:`.inproc` (``sandbox()`` and ``serve()`` apply both).
moto is pinned exactly (requirements-dev.txt) because these patches reach into its internals.
"""

from __future__ import annotations

import threading

from esm_medic_sandbox.patch_lambda import (
    ESM_STATES,
    STATUS_FIELDS,
    StatusProvider,
    clear_esm_status,
    find_esm,
    get_esm_status_override,
    get_status_provider,
    reset_status,
    set_esm_status,
    set_status_provider,
)

__all__ = [
    "ESM_STATES",
    "STATUS_FIELDS",
    "StatusProvider",
    "applied",
    "apply",
    "clear_esm_status",
    "find_esm",
    "get_esm_status_override",
    "get_status_provider",
    "reset_status",
    "set_esm_status",
    "set_status_provider",
]

_LOCK = threading.Lock()
_APPLIED: list[str] = []


def apply() -> None:
    """Patch moto in this process. Safe to call any number of times, from any thread."""
    with _LOCK:
        if _APPLIED:
            return
        from esm_medic_sandbox import (
            patch_control,
            patch_ec2,
            patch_events,
            patch_iam,
            patch_kafka,
            patch_lambda,
            patch_regions,
            patch_sfn,
            patch_sts,
            patch_timing,
        )

        for module in (
            patch_lambda,
            patch_timing,
            patch_kafka,
            patch_iam,
            patch_events,
            patch_sfn,
            patch_ec2,
            patch_control,
            patch_regions,
            patch_sts,
        ):
            module.apply()
            _APPLIED.append(module.__name__.rsplit(".", 1)[-1])


def applied() -> list[str]:
    """Names of the patch modules applied so far ([] before :func:`apply`)."""
    with _LOCK:
        return list(_APPLIED)
