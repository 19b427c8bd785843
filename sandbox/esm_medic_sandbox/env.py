"""The sandbox environment: fake credentials, a fixed region, and ``sandbox()`` = env + moto + patches + inproc.

``sandbox_env()`` makes boto3 harmless and deterministic for the duration of a ``with`` block: fake credentials,
``us-east-1``, no profile, no endpoint override, no shared config / credentials files, no instance metadata
lookups, and ``MOTO_EC2_LOAD_DEFAULT_AMIS=false`` (first EC2 call ~1 s faster). Everything is restored on exit.

``sandbox()`` is what tests and the demo use::

    from esm_medic_sandbox.env import sandbox

    with sandbox() as aws:                      # aws is an esm_medic.aws.Aws adapter
        aws.call("kafka", "create_cluster_v2", ...)

It enters ``moto.mock_aws`` with :data:`SANDBOX_CONFIG` (keys checked against ``moto/core/config.py``):
``stepfunctions.execute_state_machine=True`` (moto's ASL interpreter runs executions),
``lambda.use_docker=False`` (no Docker; :mod:`.inproc` runs handlers in-process) and
``iam.load_aws_managed_policies=False`` (:mod:`.patch_iam` loads the ones used, on demand), after applying
:func:`esm_medic_sandbox.patches.apply` and :func:`esm_medic_sandbox.inproc.apply`. ESM status overrides and the
status provider are reset on entry and exit; registered in-process handlers are cleared on exit (register them
inside the block, or before it).
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from esm_medic_sandbox.scenario_builder import KAFKA_CLUSTER_ACTIONS

if TYPE_CHECKING:  # pragma: no cover
    from esm_medic.aws import Aws

DEFAULT_REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account

SANDBOX_CONFIG: dict[str, Any] = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
    "iam": {"load_aws_managed_policies": False},
}

#: variables removed inside the sandbox (a real profile / endpoint must never leak in)
_UNSET = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


def sandbox_environ(region: str = DEFAULT_REGION) -> dict[str, str | None]:
    """The variables the sandbox sets (None = removed)."""
    values: dict[str, str | None] = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
    }
    values.update(dict.fromkeys(_UNSET))
    for key in os.environ:  # service-specific endpoint overrides (AWS_ENDPOINT_URL_LAMBDA, ...)
        if key.startswith("AWS_ENDPOINT_URL_"):
            values[key] = None
    return values


def apply_sandbox_env(region: str = DEFAULT_REGION, extra: Mapping[str, str | None] | None = None) -> dict[str, Any]:
    """Set the sandbox variables process-wide; returns the previous values (for :func:`restore_env`)."""
    values = sandbox_environ(region)
    values.update(extra or {})
    previous = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    return previous


def restore_env(previous: Mapping[str, str | None]) -> None:
    for k, v in previous.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@contextmanager
def sandbox_env(region: str = DEFAULT_REGION, **extra: str | None) -> Iterator[dict[str, str | None]]:
    """Fake credentials, ``region``, no profile / endpoint, default AMIs off; restored on exit.

    Extra keyword arguments set (or, with None, remove) more variables. Yields the values set.
    """
    previous = apply_sandbox_env(region, extra)
    try:
        yield {k: os.environ.get(k) for k in previous}
    finally:
        restore_env(previous)


def sandbox_config(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """:data:`SANDBOX_CONFIG` with per-section overrides merged in (e.g. ``{"core": {...}}``)."""
    cfg = copy.deepcopy(SANDBOX_CONFIG)
    for section, values in (overrides or {}).items():
        cfg.setdefault(section, {}).update(values)
    return cfg


_SESSIONS: dict[str, Any] = {}
_SESSIONS_LOCK = threading.Lock()


def _shared_session(region: str) -> Any:
    """One boto3 Session per region for every ``sandbox()`` in this process: botocore then loads each service
    model once (~40 ms per service and client otherwise). Safe because the sandbox's credentials never change."""
    import boto3

    with _SESSIONS_LOCK:
        session = _SESSIONS.get(region)
        if session is None:
            session = _SESSIONS[region] = boto3.Session(
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                aws_session_token="testing",
                region_name=region,
            )
        return session


def _reset_recorders() -> None:
    from esm_medic_sandbox import inproc, patch_events, patches

    patches.reset_status()
    patch_events.DELIVERIES.clear()
    patch_events.DELIVERY_ERRORS.clear()
    inproc.INVOCATIONS.clear()


@contextmanager
def sandbox(
    region: str = DEFAULT_REGION, *, config: Mapping[str, Any] | None = None, max_attempts: int = 3
) -> Iterator[Aws]:
    """env + ``mock_aws(SANDBOX_CONFIG)`` + patches + in-process Lambda; yields an :class:`esm_medic.aws.Aws`.

    ``max_attempts`` is the adapter's retry budget (small by default so sandbox failures surface fast).
    """
    from moto import mock_aws

    from esm_medic.aws import Aws
    from esm_medic_sandbox import inproc, patches

    patches.apply()
    inproc.apply()
    with sandbox_env(region):
        _reset_recorders()
        try:
            moto_config: Any = sandbox_config(config)
            with mock_aws(config=moto_config):
                yield Aws(region=region, max_attempts=max_attempts, session=_shared_session(region))
        finally:
            _reset_recorders()
            inproc.clear_handlers()


# ---------------------------------------------------------------------------------------------- test stack
LAMBDA_TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
MSK_EXECUTION_POLICY_ARN = "arn:aws:iam::aws:policy/service-role/AWSLambdaMSKExecutionRole"


@dataclass
class MskStack:
    """What :func:`create_msk_stack` made (ids and ARNs)."""

    vpc_id: str
    subnet_ids: list[str]
    security_group_id: str
    cluster_arn: str
    cluster_name: str
    role_arn: str
    role_name: str
    function_arn: str
    function_name: str
    auth: str

    def create_esm(self, aws: Aws, **overrides: Any) -> dict[str, Any]:
        """CreateEventSourceMapping for this cluster / function (topic ``orders``, TRIM_HORIZON)."""
        params: dict[str, Any] = {
            "EventSourceArn": self.cluster_arn,
            "FunctionName": self.function_name,
            "Topics": ["orders"],
            "StartingPosition": "TRIM_HORIZON",
        }
        params.update(overrides)
        return aws.call("lambda", "create_event_source_mapping", **params)


def _client_authentication(auth: str) -> tuple[dict[str, Any], str]:
    """(ClientAuthentication, in-transit ClientBroker) for an auth name."""
    if auth == "iam":
        return {"Sasl": {"Iam": {"Enabled": True}}, "Unauthenticated": {"Enabled": False}}, "TLS"
    if auth == "scram":
        return {"Sasl": {"Scram": {"Enabled": True}}, "Unauthenticated": {"Enabled": False}}, "TLS"
    if auth == "mtls":
        ca = f"arn:aws:acm-pca:us-east-1:{ACCOUNT_ID}:certificate-authority/11111111-2222-3333-4444-555555555555"
        return {"Tls": {"Enabled": True, "CertificateAuthorityArnList": [ca]}}, "TLS"
    if auth == "tls":
        return {"Unauthenticated": {"Enabled": True}}, "TLS"
    if auth == "plaintext":
        return {"Unauthenticated": {"Enabled": True}}, "PLAINTEXT"
    raise ValueError(f"unknown auth {auth!r}: expected iam, scram, mtls, tls or plaintext")


def _zip_source(source: str) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("index.py", source)
    return buf.getvalue()


def create_msk_stack(
    aws: Aws,
    *,
    name: str = "orders",
    auth: str = "iam",
    cidr: str = "10.0.0.0/16",
    public_access: bool = False,
) -> MskStack:
    """A healthy baseline: VPC + 3 subnets (us-east-1a/b/c) + a security group with a self-referencing inbound
    rule, an MSK cluster (ACTIVE) using ``auth``, a Lambda execution role (trusting lambda.amazonaws.com, with
    AWSLambdaMSKExecutionRole, plus kafka-cluster data-plane permissions when ``auth`` is iam) and a Python 3.12
    function using it. Needs the sandbox patches (run inside :func:`sandbox`)."""
    import ipaddress
    import json

    region = aws.region
    net = ipaddress.ip_network(cidr)
    vpc_id = aws.call("ec2", "create_vpc", CidrBlock=cidr)["Vpc"]["VpcId"]
    subnets = list(net.subnets(new_prefix=24))[:3]
    subnet_ids = [
        aws.call("ec2", "create_subnet", VpcId=vpc_id, CidrBlock=str(sn), AvailabilityZone=f"{region}{az}")["Subnet"][
            "SubnetId"
        ]
        for sn, az in zip(subnets, "abc", strict=True)
    ]
    sg = aws.call("ec2", "create_security_group", GroupName=f"{name}-msk", Description="MSK brokers", VpcId=vpc_id)
    sg_id = sg["GroupId"]
    aws.call(
        "ec2",
        "authorize_security_group_ingress",
        GroupId=sg_id,
        IpPermissions=[{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": sg_id}]}],
    )
    client_auth, client_broker = _client_authentication(auth)
    bng: dict[str, Any] = {"InstanceType": "kafka.m5.large", "ClientSubnets": subnet_ids, "SecurityGroups": [sg_id]}
    if public_access:
        bng["ConnectivityInfo"] = {"PublicAccess": {"Type": "SERVICE_PROVIDED_EIPS"}}
    cluster = aws.call(
        "kafka",
        "create_cluster_v2",
        ClusterName=name,
        Provisioned={
            "BrokerNodeGroupInfo": bng,
            "KafkaVersion": "3.6.0",
            "NumberOfBrokerNodes": 3,
            "ClientAuthentication": client_auth,
            "EncryptionInfo": {"EncryptionInTransit": {"ClientBroker": client_broker, "InCluster": True}},
        },
    )
    cluster_arn = cluster["ClusterArn"]
    role_name = f"{name}-consumer-role"
    role_arn = aws.call(
        "iam", "create_role", RoleName=role_name, AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST_POLICY)
    )["Role"]["Arn"]
    aws.call("iam", "attach_role_policy", RoleName=role_name, PolicyArn=MSK_EXECUTION_POLICY_ARN)
    if auth == "iam":
        aws.call(
            "iam",
            "put_role_policy",
            RoleName=role_name,
            PolicyName="kafka-data-plane",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": list(KAFKA_CLUSTER_ACTIONS),
                            "Resource": "*",
                        }
                    ],
                }
            ),
        )
    function_name = f"{name}-consumer"
    function_arn = aws.call(
        "lambda",
        "create_function",
        FunctionName=function_name,
        Runtime="python3.12",
        Role=role_arn,
        Handler="index.handler",
        Code={"ZipFile": _zip_source("def handler(event, context):\n    return {'ok': True}\n")},
        Timeout=30,
    )["FunctionArn"]
    return MskStack(
        vpc_id=vpc_id,
        subnet_ids=subnet_ids,
        security_group_id=sg_id,
        cluster_arn=cluster_arn,
        cluster_name=name,
        role_arn=role_arn,
        role_name=role_name,
        function_arn=function_arn,
        function_name=function_name,
        auth=auth,
    )
