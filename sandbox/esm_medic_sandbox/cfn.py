"""Deploy a synthesized CDK app (``cdk.out``) into the sandbox's CloudFormation, the way ``cdk deploy`` would.

What ``cdk deploy`` does that moto needs by hand: the bootstrap bucket and version parameter, the file assets
uploaded (directories zipped) under their object keys. Resource types moto's CloudFormation does not know are
removed and references to them replaced by a placeholder (listed in ``UNSUPPORTED``, reported back), so the test
of "infra deploys what the code expects" covers everything moto can model.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from esm_medic.aws import Aws

#: resource type -> value that replaces Fn::GetAtt / Ref to it
UNSUPPORTED: dict[str, str] = {
    "AWS::Lambda::Url": "http://127.0.0.1:9/",
    # moto's CloudFormation fails on alarms over metric math (GetAtt to an alarm is then "undefined")
    "AWS::CloudWatch::Alarm": "arn:aws:cloudwatch:us-east-1:000000000000:alarm:esm-medic-sandbox",
}
BOOTSTRAP_QUALIFIER = "hnb659fds"


@dataclass
class DeployedStack:
    name: str
    status: str
    resources: dict[str, dict[str, str]]  # logical id -> {type, physical id}
    outputs: dict[str, str]
    removed: list[str] = field(default_factory=list)

    def physical(self, logical_prefix: str, rtype: str) -> str:
        hits = [r["physical"] for k, r in self.resources.items() if k.startswith(logical_prefix) and r["type"] == rtype]
        if len(hits) != 1:
            raise KeyError(f"{len(hits)} resources of {rtype} start with {logical_prefix!r}")
        return hits[0]


def sandbox_template(template: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The template without the resource types moto cannot create; references to them become placeholders."""
    removed = {k: UNSUPPORTED[v["Type"]] for k, v in template["Resources"].items() if v["Type"] in UNSUPPORTED}

    def walk(x: Any) -> Any:
        if isinstance(x, dict):
            if "Fn::GetAtt" in x and x["Fn::GetAtt"][0] in removed:
                return removed[x["Fn::GetAtt"][0]]
            if "Ref" in x and x["Ref"] in removed:
                return removed[x["Ref"]]
            return {k: walk(v) for k, v in x.items()}
        if isinstance(x, list):
            return [walk(v) for v in x]
        return x

    out = walk({k: v for k, v in template.items() if k != "Resources"})
    out["Resources"] = {k: walk(v) for k, v in template["Resources"].items() if k not in removed}
    return out, sorted(removed)


def _zip_dir(src: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(src.rglob("*")):
            if f.is_file():
                z.write(f, f.relative_to(src).as_posix())
    return buf.getvalue()


def upload_assets(aws: Aws, outdir: Path, stack: str) -> int:
    account, region = aws.account_id(), aws.region
    manifest = json.loads((outdir / f"{stack}.assets.json").read_text())
    s3 = aws.client("s3")
    made: set[str] = set()
    count = 0
    for asset in manifest.get("files", {}).values():
        src = outdir / asset["source"]["path"]
        body = _zip_dir(src) if asset["source"].get("packaging") == "zip" else src.read_bytes()
        for dest in asset["destinations"].values():
            bucket = dest["bucketName"].replace("${AWS::AccountId}", account).replace("${AWS::Region}", region)
            if bucket not in made:
                kwargs: dict[str, Any] = {"Bucket": bucket}
                if region != "us-east-1":
                    kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
                try:
                    s3.create_bucket(**kwargs)
                except Exception as exc:  # already there
                    if "BucketAlready" not in type(exc).__name__ and "BucketAlready" not in str(exc):
                        raise
                made.add(bucket)
            s3.put_object(Bucket=bucket, Key=dest["objectKey"], Body=body)
            count += 1
    return count


def deploy(aws: Aws, outdir: Path | str, stack: str = "EsmMedic") -> DeployedStack:
    """Bootstrap, upload the assets and create the stack from ``outdir/<stack>.template.json``."""
    outdir = Path(outdir)
    template, removed = sandbox_template(json.loads((outdir / f"{stack}.template.json").read_text()))
    aws.client("ssm").put_parameter(
        Name=f"/cdk-bootstrap/{BOOTSTRAP_QUALIFIER}/version", Value="30", Type="String", Overwrite=True
    )
    upload_assets(aws, outdir, stack)
    cfn = aws.client("cloudformation")
    cfn.create_stack(
        StackName=stack, TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
    )
    desc = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    resources = {
        r["LogicalResourceId"]: {"type": r["ResourceType"], "physical": r.get("PhysicalResourceId", "")}
        for r in aws.paginate("cloudformation", "list_stack_resources", "StackResourceSummaries", StackName=stack)
    }
    outputs = {o["OutputKey"]: o["OutputValue"] for o in desc.get("Outputs", [])}
    return DeployedStack(stack, desc["StackStatus"], resources, outputs, removed)
