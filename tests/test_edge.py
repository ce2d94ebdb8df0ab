"""The edge contract: every vector in edge/vectors.json gives the same canonical path from the Python spec module
and from the CloudFront Function under Node.js (as written, and as the template deploys it); and the template wires
the distribution (origin group, OAC, bucket policy, function, policies) as the README describes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from cfnlint.decode import cfn_yaml
from conftest import ROOT

from imageorigin import spec
from imageorigin.errors import ImageServiceError
from imageorigin.handlers import api

EDGE = ROOT / "edge"
TABLE = json.loads((EDGE / "vectors.json").read_text())
VECTORS = TABLE["vectors"]
PARAMETERS = TABLE["parameters"]
TEMPLATE = ROOT / "infra" / "template.yaml"
sys.path.insert(0, str(EDGE))
import embed  # noqa: E402  (edge/embed.py: the template's copy of the function)


def expected(vector: dict) -> dict:
    if "expect" in vector:
        return {"uri": vector["expect"]}
    return {"status": 400, **vector["refuse"]}


def python_result(vector: dict) -> dict:
    query = parse_qs(vector["query"], keep_blank_values=True)  # decoded, as API Gateway hands it over
    try:
        uri = spec.normalize(vector["path"], query, vector["accept"], max_side=PARAMETERS["MaxOutputSide"],
                             presets=PARAMETERS["Presets"], version=PARAMETERS["KeyVersion"])
    except ImageServiceError as error:
        body = error.to_body()
        return {"status": int(error.status), **{k: body[k] for k in expected_refusal_fields(vector)}}
    return {"uri": uri}


def expected_refusal_fields(vector: dict) -> list[str]:
    return list(vector.get("refuse", {}))


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_python_gives_every_expected_canonical_path(vector: dict) -> None:
    assert python_result(vector) == expected(vector)


def node() -> str:
    found = shutil.which("node")
    if found is None:
        if os.environ.get("REQUIRE_NODE"):
            pytest.fail("Node.js is required (REQUIRE_NODE is set) but not installed")
        pytest.skip("Node.js is not installed: the edge function's half of the contract is not checked")
    return found


def run_node(code_path: Path) -> dict:
    out = subprocess.run([node(), str(EDGE / "run-vectors.js"), str(code_path), str(EDGE / "vectors.json")],
                         capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def node_source() -> dict:
    return run_node(EDGE / "viewer-request.js")


@pytest.fixture(scope="module")
def node_deployed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The code exactly as the template carries it (minified)."""
    path = tmp_path_factory.mktemp("edge") / "deployed.js"
    path.write_text(embed.embedded(TEMPLATE.read_text()))
    return run_node(path)


def node_result(answer: dict, vector: dict) -> dict:
    if "uri" in answer:
        return {"uri": answer["uri"]}
    return {"status": answer["status"], **{k: answer["body"][k] for k in expected_refusal_fields(vector)}}


@pytest.mark.parametrize("index", range(len(VECTORS)), ids=[v["name"] for v in VECTORS])
def test_the_edge_function_gives_every_expected_canonical_path(node_source: dict, index: int) -> None:
    vector = VECTORS[index]
    assert node_result(node_source["results"][index], vector) == expected(vector)


def test_the_deployed_minified_function_agrees_on_every_vector(node_deployed: dict) -> None:
    wrong = [v["name"] for v, answer in zip(VECTORS, node_deployed["results"], strict=True)
             if node_result(answer, v) != expected(v)]
    assert not wrong


def test_edge_refusals_are_json_with_short_caching(node_source: dict) -> None:
    refusals = [a for a in node_source["results"] if "status" in a]
    assert len(refusals) >= 30
    for answer in refusals:
        assert answer["headers"]["content-type"]["value"] == "application/json"
        assert answer["headers"]["cache-control"]["value"] == "public, max-age=10"
        assert answer["body"]["code"] in ("bad_parameter", "bad_key") and answer["body"]["message"]


def test_the_table_covers_what_the_contract_promises() -> None:
    names = " ".join(v["name"] for v in VECTORS).lower()
    for topic in ("alias", "order", "unknown", "chrome", "firefox", "safari", "curl", "transparent", "animated",
                  "space", "unicode", "%2f", "dot-dot", "canonical", "picture", "preset"):
        assert topic in names, topic


def test_template_carries_the_function_as_written() -> None:
    assert embed.embedded(TEMPLATE.read_text()) == embed.minified(), "run make edge"


def test_deployed_function_fits_cloudfront_and_uses_only_template_parameters(template: dict) -> None:
    code = embed.embedded(TEMPLATE.read_text())
    names = set(re.findall(r"\$\{([A-Za-z0-9]+)\}", code))
    assert names == {"KeyVersion", "MaxOutputSide", "Presets"} <= set(template["Parameters"])
    filled = re.sub(r"\$\{([A-Za-z0-9]+)\}", lambda m: str(template["Parameters"][m.group(1)]["Default"]), code)
    assert len(filled.encode()) < 10 * 1024  # CloudFront Functions' code size limit
    assert json.loads(template["Parameters"]["Presets"]["Default"]) == PARAMETERS["Presets"]


# ---- the distribution's wiring ----

@pytest.fixture(scope="module")
def template() -> dict:
    return cfn_yaml.load(str(TEMPLATE))


def resource(template: dict, name: str) -> dict:
    return template["Resources"][name]["Properties"]


def test_origin_group_reads_the_bucket_first_and_falls_over_to_the_api(template: dict) -> None:
    config = resource(template, "Distribution")["DistributionConfig"]
    origins = {o["Id"]: o for o in config["Origins"]}
    (group,) = config["OriginGroups"]["Items"]
    assert [m["OriginId"] for m in group["Members"]["Items"]] == ["cache-bucket", "resize-api"]
    assert set(group["FailoverCriteria"]["StatusCodes"]["Items"]) >= {403, 404, 500, 502, 503, 504}
    assert config["DefaultCacheBehavior"]["TargetOriginId"] == group["Id"]
    bucket = origins["cache-bucket"]
    assert bucket["DomainName"] == {"Fn::GetAtt": ["CacheBucket", "RegionalDomainName"]}
    assert bucket["OriginAccessControlId"] == {"Fn::GetAtt": ["CacheBucketAccess", "Id"]}
    assert bucket["S3OriginConfig"]["OriginAccessIdentity"] == ""
    oac = resource(template, "CacheBucketAccess")["OriginAccessControlConfig"]
    assert (oac["OriginAccessControlOriginType"], oac["SigningBehavior"]) == ("s3", "always")
    api_origin = origins["resize-api"]
    assert api_origin["OriginPath"] == "/Prod"
    assert api_origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    headers = {h["HeaderName"].lower() for h in api_origin["OriginCustomHeaders"]}
    assert api.EDGE_HEADER in headers
    assert "OriginShield" in bucket and "OriginShield" in api_origin  # optional, by parameter


def test_cache_bucket_admits_only_this_distribution(template: dict) -> None:
    statements = resource(template, "CacheBucketPolicy")["PolicyDocument"]["Statement"]
    (admit,) = [s["Fn::If"][1] for s in statements if isinstance(s, dict) and "Fn::If" in s]
    assert admit["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert admit["Action"] == "s3:GetObject"
    source_arn = admit["Condition"]["StringEquals"]["AWS:SourceArn"]["Fn::Sub"]
    assert source_arn.endswith(":distribution/${Distribution}")
    assert all(resource(template, "CacheBucket")["PublicAccessBlockConfiguration"].values())


def test_the_edge_function_normalizes_every_viewer_request(template: dict) -> None:
    behavior = resource(template, "Distribution")["DistributionConfig"]["DefaultCacheBehavior"]
    (association,) = behavior["FunctionAssociations"]
    assert association["EventType"] == "viewer-request"
    assert association["FunctionARN"] == {"Fn::GetAtt": ["EdgeNormalize", "FunctionMetadata.FunctionARN"]}
    function = resource(template, "EdgeNormalize")
    assert function["FunctionConfig"]["Runtime"] == "cloudfront-js-2.0" and function["AutoPublish"] is True
    assert behavior["ViewerProtocolPolicy"] == "redirect-to-https"
    assert behavior["AllowedMethods"] == ["GET", "HEAD"]


def test_policies_forward_only_what_matters(template: dict) -> None:
    behavior = resource(template, "Distribution")["DistributionConfig"]["DefaultCacheBehavior"]
    assert behavior["CachePolicyId"] == {"Ref": "VariantCachePolicy"}
    key = resource(template, "VariantCachePolicy")["CachePolicyConfig"]["ParametersInCacheKeyAndForwardedToOrigin"]
    assert key["HeadersConfig"]["HeaderBehavior"] == "none"  # Accept was folded into the path at the edge
    assert key["CookiesConfig"]["CookieBehavior"] == "none"
    assert key["QueryStringsConfig"] == {"QueryStringBehavior": "all"}  # the edge clears it when rewriting
    assert resource(template, "VariantCachePolicy")["CachePolicyConfig"]["MaxTTL"] >= 31536000
    origin = resource(template, "OriginRequests")["OriginRequestPolicyConfig"]
    assert (origin["HeadersConfig"]["HeaderBehavior"], origin["CookiesConfig"]["CookieBehavior"],
            origin["QueryStringsConfig"]["QueryStringBehavior"]) == ("none", "none", "none")
    headers = resource(template, "ImageResponseHeaders")["ResponseHeadersPolicyConfig"]
    assert headers["SecurityHeadersConfig"]["ContentTypeOptions"]["Override"] is True
    cors = headers["CorsConfig"]["Fn::If"][1]
    assert cors["AccessControlAllowOrigins"]["Items"] == [{"Ref": "CorsAllowOrigin"}]
    assert cors["AccessControlAllowMethods"]["Items"] == ["GET", "HEAD"]
    assert template["Parameters"]["CorsAllowOrigin"]["Default"] == "*"


def test_errors_are_cached_briefly_and_faults_not_at_all(template: dict) -> None:
    errors = {e["ErrorCode"]: e["ErrorCachingMinTTL"]
              for e in resource(template, "Distribution")["DistributionConfig"]["CustomErrorResponses"]}
    assert all(ttl <= 60 for ttl in errors.values())
    assert all(errors[code] == 0 for code in (500, 502, 503, 504))


def test_cost_is_bounded_by_parameters(template: dict) -> None:
    function = template["Resources"]["ResizeFunction"]["Properties"]
    assert function["ReservedConcurrentExecutions"]["Fn::If"][1] == {"Ref": "ReservedConcurrency"}
    rules = resource(template, "CacheBucket")["LifecycleConfiguration"]["Rules"]
    assert {"Ref": "CacheExpirationDays"} in [r.get("ExpirationInDays") for r in rules]
    prewarm = template["Resources"]["PrewarmFunction"]["Properties"]
    assert prewarm["Environment"]["Variables"]["DISTRIBUTION_ID"]["Fn::If"][1] == {"Ref": "Distribution"}
