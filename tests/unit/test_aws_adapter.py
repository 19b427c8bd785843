"""The adapter's conditional write and error classifiers."""

from __future__ import annotations

import pytest
from moto import mock_aws

from esm_medic.aws import Aws, is_conditional_check_failed


@pytest.fixture
def aws(monkeypatch):
    for k, v in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        a = Aws(region="us-east-1")
        a.call(
            "dynamodb",
            "create_table",
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield a


def test_conditional_write_reports_whether_it_happened(aws):
    put = {"TableName": "t", "Item": {"pk": {"S": "a"}}, "ConditionExpression": "attribute_not_exists(pk)"}
    assert aws.conditional("dynamodb", "put_item", **put) is True
    assert aws.conditional("dynamodb", "put_item", **put) is False
    assert aws.calls["dynamodb:PutItem"] == 2


def test_conditional_write_raises_other_errors(aws):
    with pytest.raises(Exception) as exc:
        aws.conditional("dynamodb", "put_item", TableName="missing", Item={"pk": {"S": "a"}})
    assert not is_conditional_check_failed(exc.value)


# ---------------------------------------------------------------------------------------------- unsupported
def _client_error(code: str, message: str = "m", status: int = 400) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op"
    )


def test_a_real_internal_failure_stays_an_error() -> None:
    from esm_medic.aws import is_unsupported

    assert not is_unsupported(_client_error("InternalFailure", "An internal error occurred", 500))
    assert not is_unsupported(_client_error("InternalError", "We encountered an internal error", 500))
    assert not is_unsupported(_client_error("500", "Internal Server Error", 500))
    assert not is_unsupported(_client_error("ServiceUnavailable", "slow down", 503))
    assert is_unsupported(_client_error("NotImplemented", "not implemented", 501))


def test_moto_unimplemented_actions_are_unsupported_in_process(aws) -> None:
    from esm_medic.aws import is_unsupported

    with pytest.raises(NotImplementedError) as exc:  # moto 5.2.5 raises it through the in-process stubber
        aws.call("ec2", "get_security_groups_for_vpc", VpcId="vpc-12345678")
    assert is_unsupported(exc.value)


def test_moto_unimplemented_actions_are_unsupported_over_http() -> None:
    """moto's server turns the NotImplementedError into werkzeug's generic HTML 500 (an unknown REST route into its
    HTML 404): XML services fail to parse it, JSON services report code 500 / 404 with the page as the message."""
    from moto.server import ThreadedMotoServer

    from esm_medic.aws import is_unsupported

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        aws = Aws(region="us-east-1", endpoint_url=f"http://{host}:{port}", max_attempts=0)
        aws._session = __import__("boto3").Session(
            aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1"
        )
        calls = [
            ("ec2", "get_security_groups_for_vpc", {"VpcId": "vpc-12345678"}),  # query/XML: ResponseParserError
            ("dynamodb", "describe_contributor_insights", {"TableName": "t"}),  # JSON: ClientError 500
            ("lambda", "list_code_signing_configs", {}),  # REST: ClientError 404
        ]
        for service, op, params in calls:
            with pytest.raises(Exception) as exc:
                aws.call(service, op, **params)
            assert is_unsupported(exc.value), (service, op, repr(exc.value)[:300])
    finally:
        server.stop()


def test_named_retry_budgets() -> None:
    from esm_medic import aws as adapter

    assert adapter.RETRIES_INTERACTIVE < adapter.RETRIES_WORKFLOW_TASK < adapter.RETRIES_STANDARD
    assert adapter.DEFAULT_MAX_ATTEMPTS == adapter.RETRIES_STANDARD
    quick = Aws.interactive(region="us-east-1")
    assert quick.max_attempts == adapter.RETRIES_INTERACTIVE and quick.timeouts == adapter.INTERACTIVE_TIMEOUTS
    cfg = quick.client("sts").meta.config
    assert cfg.retries["total_max_attempts"] == adapter.RETRIES_INTERACTIVE + 1  # botocore: 1 try + retries
    assert (cfg.connect_timeout, cfg.read_timeout) == adapter.INTERACTIVE_TIMEOUTS


def test_items_round_trip_through_boto3_serialisers() -> None:
    from esm_medic.aws import from_item, to_item

    values = {"pk": "ESM#1", "n": 3, "f": 1.5, "ok": True, "tags": ["a"], "doc": {"x": 1.25, "y": [1, "z"]}, "no": None}
    item = to_item(values)
    assert item["pk"] == {"S": "ESM#1"} and item["n"] == {"N": "3"} and item["f"] == {"N": "1.5"}
    assert "no" not in item
    assert from_item(item) == {k: v for k, v in values.items() if v is not None}
