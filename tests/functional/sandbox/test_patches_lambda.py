"""Kafka event source mappings in the patched moto: create / get / list / update / delete, status control."""

from __future__ import annotations

import json
import threading

import pytest
from botocore.exceptions import ClientError
from esm_medic_sandbox import patches

from esm_medic.esm import EsmConfig

SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:AmazonMSK_orders-AbCdEf"
CA_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:root-ca-AbCdEf"
CERT_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:client-cert-AbCdEf"


def _unvalidated(aws, service: str):
    """A client without botocore's own parameter checks, so the server-side validation is what is tested."""
    from botocore.config import Config

    return aws.session.client(service, region_name=aws.region, config=Config(parameter_validation=False))


def _clean(item: dict) -> dict:
    return {k: v for k, v in item.items() if k != "ResponseMetadata"}


@pytest.fixture
def stack(sandbox_aws, msk_stack):
    return msk_stack()


def test_msk_esm_stores_and_returns_every_field_verbatim(sandbox_aws, stack) -> None:
    lam = sandbox_aws.client("lambda")
    fields = {
        "Topics": ["orders"],
        "StartingPosition": "AT_TIMESTAMP",
        "StartingPositionTimestamp": 1700000000,
        "BatchSize": 500,
        "MaximumBatchingWindowInSeconds": 5,
        "SourceAccessConfigurations": [
            {"Type": "SASL_SCRAM_512_AUTH", "URI": SECRET},
            {"Type": "CLIENT_CERTIFICATE_TLS_AUTH", "URI": CERT_SECRET},
        ],
        "ProvisionedPollerConfig": {"MinimumPollers": 2, "MaximumPollers": 10},
        "AmazonManagedKafkaEventSourceConfig": {"ConsumerGroupId": "orders-consumers"},
        "DestinationConfig": {"OnFailure": {"Destination": "arn:aws:sqs:us-east-1:123456789012:dlq"}},
        "FilterCriteria": {"Filters": [{"Pattern": '{"value": {"kind": ["order"]}}'}]},
        "LoggingConfig": {"SystemLogLevel": "WARN"},
    }
    created = lam.create_event_source_mapping(
        EventSourceArn=stack.cluster_arn, FunctionName=stack.function_name, Tags={"team": "data"}, **fields
    )
    got = _clean(lam.get_event_source_mapping(UUID=created["UUID"]))
    for key, value in fields.items():
        if key == "StartingPositionTimestamp":
            assert got[key].timestamp() == value
        else:
            assert got[key] == value, key
    assert got["EventSourceArn"] == stack.cluster_arn
    assert got["FunctionArn"] == stack.function_arn
    assert got["EventSourceMappingArn"].endswith(f":event-source-mapping:{created['UUID']}")
    assert got["State"] == "Enabled"
    assert got["StateTransitionReason"] == "USER_INITIATED"
    assert got["LastProcessingResult"] == "No records processed"
    assert lam.list_tags(Resource=got["EventSourceMappingArn"])["Tags"] == {"team": "data"}
    lam.tag_resource(Resource=got["EventSourceMappingArn"], Tags={"owner": "esm-medic"})
    assert lam.list_tags(Resource=got["EventSourceMappingArn"])["Tags"] == {"team": "data", "owner": "esm-medic"}
    # esm-medic's own model reads it as an MSK ESM
    cfg = EsmConfig.from_api(got)
    assert (cfg.source_kind, cfg.cluster_arn, cfg.consumer_group_id, cfg.provisioned) == (
        "msk",
        stack.cluster_arn,
        "orders-consumers",
        True,
    )


def test_self_managed_esm_with_every_source_access_type(sandbox_aws, stack) -> None:
    lam = sandbox_aws.client("lambda")
    access = [
        {"Type": "VPC_SUBNET", "URI": f"subnet:{stack.subnet_ids[0]}"},
        {"Type": "VPC_SECURITY_GROUP", "URI": f"security_group:{stack.security_group_id}"},
        {"Type": "BASIC_AUTH", "URI": SECRET},
        {"Type": "SASL_SCRAM_512_AUTH", "URI": SECRET},
        {"Type": "SASL_SCRAM_256_AUTH", "URI": SECRET},
        {"Type": "VIRTUAL_HOST", "URI": "/vhost"},
        {"Type": "CLIENT_CERTIFICATE_TLS_AUTH", "URI": CERT_SECRET},
        {"Type": "SERVER_ROOT_CA_CERTIFICATE", "URI": CA_SECRET},
    ]
    servers = ["kafka-1.example.internal:9096", "kafka-2.example.internal:9096"]
    created = lam.create_event_source_mapping(
        SelfManagedEventSource={"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": servers}},
        FunctionName=stack.function_arn,
        Topics=["payments"],
        StartingPosition="LATEST",
        SourceAccessConfigurations=access,
        SelfManagedKafkaEventSourceConfig={"ConsumerGroupId": "payments"},
    )
    got = _clean(lam.get_event_source_mapping(UUID=created["UUID"]))
    assert "EventSourceArn" not in got
    assert got["SelfManagedEventSource"] == {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": servers}}
    assert got["SourceAccessConfigurations"] == access
    assert got["SelfManagedKafkaEventSourceConfig"] == {"ConsumerGroupId": "payments"}
    assert got["BatchSize"] == 100  # AWS's Kafka default
    cfg = EsmConfig.from_api(got)
    assert cfg.source_kind == "self-managed"
    assert cfg.vpc_subnets == (stack.subnet_ids[0],)
    assert cfg.bootstrap_servers == tuple(servers)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"Topics": []}, "exactly one topic"),
        ({"Topics": ["a", "b"]}, "exactly one topic"),
        ({"StartingPosition": None}, "StartingPosition is required"),
        ({"StartingPosition": "EARLIEST"}, "Invalid StartingPosition"),
        ({"StartingPosition": "AT_TIMESTAMP"}, "StartingPositionTimestamp is required"),
        ({"BatchSize": 10001}, "BatchSize"),
        ({"SourceAccessConfigurations": [{"Type": "SASL_PLAIN", "URI": SECRET}]}, "enum value set"),
        ({"SourceAccessConfigurations": [{"Type": "VPC_SUBNET", "URI": "subnet:subnet-1"}]}, "must be given together"),
        ({"SourceAccessConfigurations": [{"Type": "VPC_SUBNET", "URI": "subnet-1"}]}, "Invalid VPC_SUBNET URI"),
        ({"ProvisionedPollerConfig": {"MinimumPollers": 5, "MaximumPollers": 2}}, "MinimumPollers"),
        ({"EventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/nope/1"}, "does not exist"),
    ],
)
def test_invalid_kafka_esm_is_rejected_like_aws(sandbox_aws, stack, overrides, message) -> None:
    params = {
        "EventSourceArn": stack.cluster_arn,
        "FunctionName": stack.function_name,
        "Topics": ["orders"],
        "StartingPosition": "LATEST",
    }
    params.update(overrides)
    params = {k: v for k, v in params.items() if v is not None}
    with pytest.raises(ClientError) as err:
        _unvalidated(sandbox_aws, "lambda").create_event_source_mapping(**params)
    assert err.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert message in err.value.response["Error"]["Message"]


@pytest.mark.parametrize(
    "sme",
    [
        {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": []}},
        {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["no-port.example.com"]}},
        {"Endpoints": {"OTHER": ["a:1"]}},
    ],
)
def test_invalid_self_managed_source(sandbox_aws, stack, sme) -> None:
    with pytest.raises(ClientError) as err:
        _unvalidated(sandbox_aws, "lambda").create_event_source_mapping(
            SelfManagedEventSource=sme, FunctionName=stack.function_name, Topics=["t"], StartingPosition="LATEST"
        )
    assert err.value.response["Error"]["Code"] == "InvalidParameterValueException"


def test_unknown_function_and_duplicate_mapping(sandbox_aws, stack) -> None:
    lam = sandbox_aws.client("lambda")
    with pytest.raises(ClientError) as err:
        lam.create_event_source_mapping(
            EventSourceArn=stack.cluster_arn, FunctionName="nope", Topics=["orders"], StartingPosition="LATEST"
        )
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
    first = stack.create_esm(sandbox_aws)
    with pytest.raises(ClientError) as err:
        stack.create_esm(sandbox_aws, FunctionName=stack.function_arn)  # same function by ARN
    assert err.value.response["Error"]["Code"] == "ResourceConflictException"
    assert first["UUID"] in err.value.response["Error"]["Message"]
    other_topic = stack.create_esm(sandbox_aws, Topics=["refunds"])  # another topic is fine
    assert other_topic["UUID"] != first["UUID"]


def test_update_enable_disable_and_kafka_fields(sandbox_aws, stack) -> None:
    lam = sandbox_aws.client("lambda")
    uuid = stack.create_esm(sandbox_aws)["UUID"]
    updated = lam.update_event_source_mapping(
        UUID=uuid,
        Enabled=False,
        BatchSize=50,
        SourceAccessConfigurations=[{"Type": "SASL_SCRAM_512_AUTH", "URI": SECRET}],
        ProvisionedPollerConfig={"MinimumPollers": 1, "MaximumPollers": 4},
        LoggingConfig={"SystemLogLevel": "INFO"},
    )
    assert updated["State"] == "Disabled"
    got = lam.get_event_source_mapping(UUID=uuid)
    assert (got["State"], got["BatchSize"], got["LoggingConfig"]) == ("Disabled", 50, {"SystemLogLevel": "INFO"})
    assert got["SourceAccessConfigurations"] == [{"Type": "SASL_SCRAM_512_AUTH", "URI": SECRET}]
    assert lam.update_event_source_mapping(UUID=uuid, Enabled=True)["State"] == "Enabled"
    with pytest.raises(ClientError) as err:
        _unvalidated(sandbox_aws, "lambda").update_event_source_mapping(UUID=uuid, BatchSize=0)
    assert err.value.response["Error"]["Code"] == "InvalidParameterValueException"


def test_update_and_delete_unknown_uuid_raise_not_found(sandbox_aws) -> None:
    lam = sandbox_aws.client("lambda")
    for call in (
        lambda: lam.update_event_source_mapping(UUID="00000000-0000-0000-0000-000000000000", Enabled=False),
        lambda: lam.delete_event_source_mapping(UUID="00000000-0000-0000-0000-000000000000"),
        lambda: lam.get_event_source_mapping(UUID="00000000-0000-0000-0000-000000000000"),
    ):
        with pytest.raises(ClientError) as err:
            call()
        assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_delete_returns_deleting_and_drops_overrides(sandbox_aws, stack) -> None:
    lam = sandbox_aws.client("lambda")
    uuid = stack.create_esm(sandbox_aws)["UUID"]
    patches.set_esm_status(uuid, last_processing_result="PROBLEM: x")
    assert lam.delete_event_source_mapping(UUID=uuid)["State"] == "Deleting"
    assert patches.get_esm_status_override(uuid) == {}
    assert lam.list_event_source_mappings()["EventSourceMappings"] == []


# ---------------------------------------------------------------------------------------------- status
def test_override_sets_any_status_field_and_clear_restores(sandbox_aws, stack) -> None:
    lam = sandbox_aws.client("lambda")
    uuid = stack.create_esm(sandbox_aws)["UUID"]
    patches.set_esm_status(uuid, last_processing_result="PROBLEM: Connection error. Please check your event source")
    got = lam.get_event_source_mapping(UUID=uuid)
    assert got["LastProcessingResult"].startswith("PROBLEM: Connection error")
    assert (got["State"], got["StateTransitionReason"]) == ("Enabled", "USER_INITIATED")  # None = leave
    patches.set_esm_status(uuid, state="Disabled", reason="ESM_CONFIG_NOT_VALID")
    got = lam.get_event_source_mapping(UUID=uuid)
    assert (got["State"], got["StateTransitionReason"]) == ("Disabled", "ESM_CONFIG_NOT_VALID")
    assert got["LastProcessingResult"].startswith("PROBLEM: Connection error")  # earlier field kept
    listed = lam.list_event_source_mappings(FunctionName=stack.function_name)["EventSourceMappings"][0]
    assert listed["StateTransitionReason"] == "ESM_CONFIG_NOT_VALID"
    patches.clear_esm_status(uuid)
    got = lam.get_event_source_mapping(UUID=uuid)
    assert (got["State"], got["StateTransitionReason"], got["LastProcessingResult"]) == (
        "Enabled",
        "USER_INITIATED",
        "No records processed",
    )
    with pytest.raises(ValueError, match="invalid ESM State"):
        patches.set_esm_status(uuid, state="Broken")


def test_provider_precedence_and_calls(sandbox_aws, stack) -> None:
    lam = sandbox_aws.client("lambda")
    seen: list[dict] = []

    def provider(item: dict) -> dict | None:
        seen.append(item)
        return {"State": "Enabled", "LastProcessingResult": "PROBLEM: Cluster failed to authorize Lambda."}

    previous = patches.set_status_provider(provider)
    assert previous is None
    created = stack.create_esm(sandbox_aws)
    uuid = created["UUID"]
    assert created["LastProcessingResult"] == "PROBLEM: Cluster failed to authorize Lambda."  # called on Create
    assert seen[-1]["UUID"] == uuid and seen[-1]["LastProcessingResult"] == "No records processed"
    n = len(seen)
    assert lam.get_event_source_mapping(UUID=uuid)["LastProcessingResult"].startswith("PROBLEM: Cluster")
    lam.list_event_source_mappings()
    assert len(seen) == n + 2  # called on Get and List
    # explicit override beats the provider
    patches.set_esm_status(uuid, last_processing_result="OK")
    assert lam.get_event_source_mapping(UUID=uuid)["LastProcessingResult"] == "OK"
    patches.clear_esm_status(uuid)
    # a user disable wins over a provider State of Enabled
    assert lam.update_event_source_mapping(UUID=uuid, Enabled=False)["State"] == "Disabled"
    assert lam.get_event_source_mapping(UUID=uuid)["State"] == "Disabled"
    # a provider that raises does not break the API
    patches.set_status_provider(lambda item: 1 / 0)
    assert lam.get_event_source_mapping(UUID=uuid)["LastProcessingResult"] == "No records processed"
    patches.set_status_provider(None)
    assert patches.get_status_provider() is None


def test_user_update_clears_explicit_state_override(sandbox_aws, stack) -> None:
    lam = sandbox_aws.client("lambda")
    uuid = stack.create_esm(sandbox_aws)["UUID"]
    patches.set_esm_status(uuid, state="Enabled", last_processing_result="PROBLEM: x")
    assert lam.update_event_source_mapping(UUID=uuid, Enabled=False)["State"] == "Disabled"
    assert patches.get_esm_status_override(uuid) == {"LastProcessingResult": "PROBLEM: x"}
    assert lam.get_event_source_mapping(UUID=uuid)["LastProcessingResult"] == "PROBLEM: x"


def test_status_api_is_thread_safe(sandbox_aws, stack) -> None:
    lam = sandbox_aws.client("lambda")
    uuid = stack.create_esm(sandbox_aws)["UUID"]

    def writer(n: int) -> None:
        for i in range(50):
            patches.set_esm_status(uuid, last_processing_result=f"PROBLEM: {n}-{i}")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for _ in range(10):
        assert lam.get_event_source_mapping(UUID=uuid)["LastProcessingResult"].startswith(("PROBLEM", "No records"))
    for t in threads:
        t.join()
    assert lam.get_event_source_mapping(UUID=uuid)["LastProcessingResult"].endswith("-49")


def test_raw_configuration_is_what_the_provider_sees(sandbox_aws, stack) -> None:
    uuid = stack.create_esm(sandbox_aws)["UUID"]
    patches.set_esm_status(uuid, state="Creating")
    esm = patches.find_esm(uuid)
    assert esm is not None and esm.enabled is True
    assert esm._esm_medic_raw_configuration()["State"] == "Enabled"
    assert esm.get_configuration()["State"] == "Creating"
    assert patches.find_esm("nope") is None


# ---------------------------------------------------------------------------------------------- listing
def test_list_paginates_like_aws(sandbox_aws, stack) -> None:
    lam = sandbox_aws.client("lambda")
    uuids = [stack.create_esm(sandbox_aws, Topics=[f"t{i}"])["UUID"] for i in range(105)]
    page = lam.list_event_source_mappings()
    assert len(page["EventSourceMappings"]) == 100  # AWS's default page
    rest = lam.list_event_source_mappings(Marker=page["NextMarker"])
    assert len(rest["EventSourceMappings"]) == 5 and "NextMarker" not in rest
    small = lam.list_event_source_mappings(MaxItems=7)
    assert len(small["EventSourceMappings"]) == 7
    # boto3's paginator and the adapter's paginate see every mapping once, in order
    seen = [e["UUID"] for e in sandbox_aws.paginate("lambda", "list_event_source_mappings", "EventSourceMappings")]
    assert seen == uuids
    pages = lam.get_paginator("list_event_source_mappings").paginate(PaginationConfig={"PageSize": 40})
    assert [len(p["EventSourceMappings"]) for p in pages] == [40, 40, 25]
    with pytest.raises(ClientError) as err:
        lam.list_event_source_mappings(Marker="garbage")
    assert err.value.response["Error"]["Code"] == "InvalidParameterValueException"


def test_list_filters_by_function_name_or_arn_and_source(sandbox_aws, msk_stack) -> None:
    lam = sandbox_aws.client("lambda")
    a = msk_stack(name="alpha")
    b = msk_stack(name="beta", cidr="10.1.0.0/16")
    ua = a.create_esm(sandbox_aws, FunctionName=a.function_arn)["UUID"]
    ub = b.create_esm(sandbox_aws)["UUID"]
    for ref in (a.function_name, a.function_arn):
        assert [e["UUID"] for e in lam.list_event_source_mappings(FunctionName=ref)["EventSourceMappings"]] == [ua]
    by_source = lam.list_event_source_mappings(EventSourceArn=b.cluster_arn)["EventSourceMappings"]
    assert [e["UUID"] for e in by_source] == [ub]


def test_sqs_mappings_still_work(sandbox_aws, stack) -> None:
    q = sandbox_aws.call("sqs", "create_queue", QueueName="q")["QueueUrl"]
    arn = sandbox_aws.call("sqs", "get_queue_attributes", QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    esm = sandbox_aws.call(
        "lambda", "create_event_source_mapping", EventSourceArn=arn, FunctionName=stack.function_name
    )
    assert esm["BatchSize"] == 10
    assert esm["StateTransitionReason"] == "USER_INITIATED"  # as AWS writes it, for every source


def test_cloudformation_kafka_mappings_create_and_delete(sandbox_aws, stack) -> None:
    template = {
        "Resources": {
            "Msk": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {
                    "EventSourceArn": stack.cluster_arn,
                    "FunctionName": stack.function_name,
                    "Topics": ["orders"],
                    "StartingPosition": "LATEST",
                },
            },
            "SelfManaged": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {
                    "SelfManagedEventSource": {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["k1.example.com:9092"]}},
                    "FunctionName": stack.function_name,
                    "Topics": ["payments"],
                    "StartingPosition": "TRIM_HORIZON",
                },
            },
        }
    }
    cfn = sandbox_aws.client("cloudformation")
    cfn.create_stack(StackName="esms", TemplateBody=json.dumps(template))
    assert cfn.describe_stacks(StackName="esms")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    listed = sandbox_aws.call("lambda", "list_event_source_mappings")["EventSourceMappings"]
    assert sorted(e["Topics"][0] for e in listed) == ["orders", "payments"]
    cfn.delete_stack(StackName="esms")
    assert sandbox_aws.call("lambda", "list_event_source_mappings")["EventSourceMappings"] == []
