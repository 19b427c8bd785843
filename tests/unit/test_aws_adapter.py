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
