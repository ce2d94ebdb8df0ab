"""Running it in production: alarms wired to the right metrics and the topic, the dashboard, logs, the edge's domain,
firewall and logs, the checkov scan, and the env-vars file for `sam local invoke` (README, "Runbook")."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT

TEMPLATE = ROOT / "infra" / "template.yaml"
HANDLERS = ROOT / "functions" / "resize" / "imageorigin" / "handlers"
CHECKOV = ROOT / ".venv" / "lint" / "bin" / "checkov"  # make lint / make test install it (requirements/lint.txt)

TOPIC = {"Ref": "AlarmTopic"}
API_NAME = {"Fn::Sub": "${AWS::StackName}-images"}
# every alarm: (namespace, metric, {dimension: value}); the API's is metric math over two metrics
ALARMS = {
    "ResizeErrorsAlarm": ("AWS/Lambda", "Errors", {"FunctionName": {"Ref": "ResizeFunction"}}),
    "ResizeThrottlesAlarm": ("AWS/Lambda", "Throttles", {"FunctionName": {"Ref": "ResizeFunction"}}),
    "ResizeDurationAlarm": ("AWS/Lambda", "Duration", {"FunctionName": {"Ref": "ResizeFunction"}}),
    "PrewarmErrorsAlarm": ("AWS/Lambda", "Errors", {"FunctionName": {"Ref": "PrewarmFunction"}}),
    "PrewarmThrottlesAlarm": ("AWS/Lambda", "Throttles", {"FunctionName": {"Ref": "PrewarmFunction"}}),
    "PrewarmDurationAlarm": ("AWS/Lambda", "Duration", {"FunctionName": {"Ref": "PrewarmFunction"}}),
    "PrewarmFailuresAlarm": ("AWS/SQS", "ApproximateNumberOfMessagesVisible",
                             {"QueueName": {"Fn::GetAtt": ["PrewarmFailures", "QueueName"]}}),
    "EdgeCacheHitRateAlarm": ("AWS/CloudFront", "CacheHitRate",
                              {"DistributionId": {"Ref": "Distribution"}, "Region": "Global"}),
    "ApiErrorRateAlarm": ("AWS/ApiGateway", ("5XXError", "Count"), {"ApiName": API_NAME, "Stage": "Prod"}),
}


@pytest.fixture(scope="module")
def template() -> dict:
    from devserver.sam_env import load_template

    return load_template(TEMPLATE)


def resources(template: dict, kind: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def dimensions(metric: dict) -> dict:
    return {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}


def test_every_alarm_is_known_and_notifies_the_topic(template: dict) -> None:
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    assert set(alarms) == set(ALARMS), "a new alarm needs its row in ALARMS (and the README's runbook)"
    for name, alarm in alarms.items():
        props = alarm["Properties"]
        assert props["AlarmActions"] == [TOPIC] and props["OKActions"] == [TOPIC], name
        assert props["TreatMissingData"] == "notBreaching", name  # no traffic is not an incident
        assert f'Runbook: "{name}"' in " ".join(props["AlarmDescription"].split()), name
    assert template["Resources"]["AlarmTopic"]["Type"] == "AWS::SNS::Topic"
    subscription = template["Resources"]["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"] == {"TopicArn": TOPIC, "Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}}
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""


@pytest.mark.parametrize("name", sorted(set(ALARMS) - {"ApiErrorRateAlarm"}))
def test_each_alarm_watches_its_resource(template: dict, name: str) -> None:
    namespace, metric, dims = ALARMS[name]
    props = template["Resources"][name]["Properties"]
    assert (props["Namespace"], props["MetricName"], dimensions(props)) == (namespace, metric, dims)
    for value in dims.values():  # every resource a dimension names exists
        target = value.get("Ref") or value.get("Fn::GetAtt", [None])[0] if isinstance(value, dict) else None
        assert target is None or target in template["Resources"], (name, target)


def test_the_api_alarm_is_the_5xx_rate_of_this_api(template: dict) -> None:
    props = template["Resources"]["ApiErrorRateAlarm"]["Properties"]
    metrics = {m["Id"]: m for m in props["Metrics"]}
    returned = [m for m in props["Metrics"] if m.get("ReturnData")]
    assert len(returned) == 1 and "Expression" in returned[0]
    stats = {m["MetricStat"]["Metric"]["MetricName"]: m for m in metrics.values() if "MetricStat" in m}
    assert set(stats) == {"5XXError", "Count"}
    api = template["Resources"]["ImageApi"]["Properties"]
    for m in stats.values():
        metric = m["MetricStat"]["Metric"]
        assert metric["Namespace"] == "AWS/ApiGateway" and m["MetricStat"]["Stat"] == "Sum"
        assert dimensions(metric) == {"ApiName": api["Name"], "Stage": api["StageName"]}
    expression = returned[0]["Expression"]
    assert f"{stats['5XXError']['Id']} / {stats['Count']['Id']}" in expression
    assert props["ComparisonOperator"] == "GreaterThanThreshold" and 0 < props["Threshold"] <= 10  # percent


@pytest.mark.parametrize(("alarm", "function"), [("ResizeDurationAlarm", "ResizeFunction"),
                                                 ("PrewarmDurationAlarm", "PrewarmFunction")])
def test_duration_alarms_fire_at_80_percent_of_the_timeout(template: dict, alarm: str, function: str) -> None:
    timeout = template["Resources"][function]["Properties"].get("Timeout", template["Globals"]["Function"]["Timeout"])
    props = template["Resources"][alarm]["Properties"]
    assert props["ExtendedStatistic"] == "p99" and props["Unit"] == "Milliseconds"
    assert props["Threshold"] == round(0.8 * timeout * 1000)


def test_the_cache_hit_alarm_has_its_metrics_and_region(template: dict) -> None:
    conditions = template["Conditions"]
    assert template["Resources"]["EdgeCacheHitRateAlarm"]["Condition"] == "HasEdgeAlarm"
    assert {"Condition": "HasEdgeMetrics"} in conditions["HasEdgeAlarm"]["Fn::And"]
    assert {"Fn::Equals": [{"Ref": "AWS::Region"}, "us-east-1"]} in conditions["HasEdgeAlarm"]["Fn::And"]
    subscription = template["Resources"]["EdgeMetrics"]
    assert subscription["Type"] == "AWS::CloudFront::MonitoringSubscription"
    assert subscription["Condition"] == "HasEdgeMetrics"
    assert subscription["Properties"] == {"DistributionId": {"Ref": "Distribution"}, "MonitoringSubscription": {
        "RealtimeMetricsSubscriptionConfig": {"RealtimeMetricsSubscriptionStatus": "Enabled"}}}
    props = template["Resources"]["EdgeCacheHitRateAlarm"]["Properties"]
    assert props["ComparisonOperator"] == "LessThanThreshold"
    assert props["Threshold"] == {"Ref": "CacheHitRateThreshold"}
    assert template["Parameters"]["EnableEdgeMetrics"]["Default"] == "false"


def published_metrics() -> set[str]:
    code = "".join(p.read_text() for p in HANDLERS.glob("*.py"))
    names = set(re.findall(r'add_metric\(name="(\w+)"', code))
    if 'name=f"Error{error.status // 100}xx"' in code:
        names |= {"Error4xx", "Error5xx"}
    return names


def dashboard(template: dict) -> dict:
    body, variables = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert set(re.findall(r"\$\{([^}]+)\}", body)) <= {*variables, "AWS::Region", "ResizeFunction",
                                                       "PrewarmFunction", "PrewarmFailures.QueueName"}
    return json.loads(re.sub(r"\$\{[^}]+\}", "x", body))


def test_the_dashboard_shows_every_metric_the_function_publishes(template: dict) -> None:
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    namespace, service = env["POWERTOOLS_METRICS_NAMESPACE"], env["POWERTOOLS_SERVICE_NAME"]
    shown = set()
    for widget in dashboard(template)["widgets"]:
        previous: list = []
        for row in widget["properties"]["metrics"]:
            spec = [x for x in row if not isinstance(x, dict)]
            if spec[0] == "...":  # CloudWatch's shorthand: the previous row, its last values replaced
                spec = previous[:len(previous) - len(spec) + 1] + spec[1:]
            spec = [p if x == "." else x for x, p in zip(spec, [*previous, *spec], strict=False)]
            previous = spec
            if spec[0] == namespace:
                assert spec[2:] == ["service", service], spec
                shown.add(spec[1])
    expected = published_metrics()
    assert len(expected) >= 11 and expected <= shown, f"not on the dashboard: {expected - shown}"
    namespaces = {w["properties"]["metrics"][0][0] for w in dashboard(template)["widgets"]}
    assert {"AWS/Lambda", "AWS/ApiGateway", "AWS/CloudFront"} <= namespaces


def test_api_access_logs_are_json_with_the_functions_correlation_id(template: dict) -> None:
    api = template["Resources"]["ImageApi"]["Properties"]
    setting = api["AccessLogSetting"]
    assert setting["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    line = json.loads(setting["Format"])
    assert line["requestId"] == "$context.requestId" and line["status"] == "$context.status"
    group = template["Resources"]["ApiAccessLogGroup"]["Properties"]
    assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    # the function logs the same id: powertools' correlation id from the REST event's requestContext.requestId
    assert "correlation_id_path=correlation_paths.API_GATEWAY_REST" in (HANDLERS / "api.py").read_text()
    assert template["Resources"]["ApiGatewayAccount"]["Properties"]["CloudWatchRoleArn"] == {
        "Fn::GetAtt": ["ApiGatewayLogsRole", "Arn"]}
    assert "ApiGatewayAccount" in template["Resources"]["ImageApi"]["DependsOn"]


def test_api_stage_throttling_is_set_by_parameters(template: dict) -> None:
    (setting,) = template["Resources"]["ImageApi"]["Properties"]["MethodSettings"]
    assert (setting["ResourcePath"], setting["HttpMethod"]) == ("/*", "*")
    assert setting["ThrottlingBurstLimit"] == {"Ref": "ApiThrottlingBurstLimit"}
    assert setting["ThrottlingRateLimit"] == {"Ref": "ApiThrottlingRateLimit"}
    parameters = template["Parameters"]
    assert (parameters["ApiThrottlingBurstLimit"]["Default"], parameters["ApiThrottlingRateLimit"]["Default"]) == (
        200, 100)


def test_the_distribution_takes_its_own_domain_with_a_tls_floor(template: dict) -> None:
    config = template["Resources"]["Distribution"]["Properties"]["DistributionConfig"]
    assert config["HttpVersion"] == "http2and3"
    assert config["Aliases"] == {"Fn::If": ["HasDomain", [{"Ref": "DomainName"}], {"Ref": "AWS::NoValue"}]}
    condition, own, default = config["ViewerCertificate"]["Fn::If"]
    assert condition == "HasDomain" and default == {"CloudFrontDefaultCertificate": True}
    assert own == {"AcmCertificateArn": {"Ref": "CertificateArn"}, "SslSupportMethod": "sni-only",
                   "MinimumProtocolVersion": "TLSv1.2_2021"}
    assert ":acm:us-east-1:" in template["Parameters"]["CertificateArn"]["AllowedPattern"]
    assert "DomainAndCertificateTogether" in template["Rules"]


def test_the_firewall_is_optional_rate_limits_per_ip_and_blocks_known_bad_inputs(template: dict) -> None:
    assert template["Parameters"]["EnableWaf"]["Default"] == "false"
    acl = template["Resources"]["EdgeFirewall"]
    assert acl["Condition"] == "HasWaf" and acl["Properties"]["Scope"] == "CLOUDFRONT"
    rules = {r["Name"]: r for r in acl["Properties"]["Rules"]}
    rate = rules["RatePerIp"]["Statement"]["RateBasedStatement"]
    assert rate["AggregateKeyType"] == "IP" and rate["Limit"] == {"Ref": "WafRateLimit"}
    groups = {r["Statement"]["ManagedRuleGroupStatement"]["Name"] for r in rules.values()
              if "ManagedRuleGroupStatement" in r["Statement"]}
    assert "AWSManagedRulesKnownBadInputsRuleSet" in groups
    config = template["Resources"]["Distribution"]["Properties"]["DistributionConfig"]
    assert config["WebACLId"] == {"Fn::If": ["HasWaf", {"Fn::GetAtt": ["EdgeFirewall", "Arn"]},
                                             {"Ref": "AWS::NoValue"}]}
    assert template["Rules"]["WafOnlyInUsEast1"]["Assertions"][0]["Assert"] == {
        "Fn::Equals": [{"Ref": "AWS::Region"}, "us-east-1"]}


def test_cdn_logs_are_optional_and_expire(template: dict) -> None:
    assert template["Parameters"]["EnableCdnLogs"]["Default"] == "false"
    bucket = template["Resources"]["CdnLogsBucket"]
    assert bucket["Condition"] == "HasCdnLogs"
    props = bucket["Properties"]
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerPreferred"}]
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert [r["ExpirationInDays"] for r in props["LifecycleConfiguration"]["Rules"]] == [{"Ref": "LogRetentionDays"}]
    logging = template["Resources"]["Distribution"]["Properties"]["DistributionConfig"]["Logging"]["Fn::If"]
    assert logging[0] == "HasCdnLogs" and logging[1]["Bucket"] == {"Fn::GetAtt": ["CdnLogsBucket", "DomainName"]}


def test_prewarm_concurrency_and_playground_are_parameters(template: dict) -> None:
    prewarm = template["Resources"]["PrewarmFunction"]["Properties"]
    assert prewarm["ReservedConcurrentExecutions"] == {"Ref": "PrewarmConcurrency"}
    playground = template["Parameters"]["Playground"]
    assert playground["Default"] == "false" and playground["AllowedValues"] == ["true", "false"]
    assert "/_playground" in playground["Description"] and "originals' keys" in playground["Description"]
    resize = template["Resources"]["ResizeFunction"]["Properties"]["Environment"]["Variables"]
    assert resize["PLAYGROUND"] == {"Ref": "Playground"}


@pytest.mark.early
def test_checkov_finds_nothing_unexplained() -> None:
    checkov = CHECKOV if CHECKOV.exists() else shutil.which("checkov")
    if checkov is None:
        pytest.skip("checkov is not installed (make test and make lint install it into .venv/lint)")
    result = subprocess.run([str(checkov), "-f", str(TEMPLATE), "--framework", "cloudformation", "--compact",
                             "--skip-download", "--output", "json"], capture_output=True, text=True, timeout=300)
    report = json.loads(result.stdout)
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert not failed and report["summary"]["parsing_errors"] == 0, f"checkov: fix or skip with a reason: {failed}"
    for check in report["results"]["skipped_checks"]:
        assert len(check["check_result"].get("suppress_comment", "")) > 20, check["check_id"]
    assert report["summary"]["passed"] > 20


# ---- sam local invoke against make serve's S3 ----


def test_sam_env_names_exactly_what_each_function_reads(template: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from devserver import local, sam_env

    monkeypatch.setenv("S3_PORT", "5099")
    document = sam_env.env_vars(template)
    functions = resources(template, "AWS::Serverless::Function")
    shared = template["Globals"]["Function"]["Environment"]["Variables"]
    assert set(document) == set(functions) == {"ResizeFunction", "PrewarmFunction"}
    for name, resource in functions.items():
        own = resource["Properties"].get("Environment", {}).get("Variables", {})
        # sam local passes only the variables a function declares: the endpoint's slot deploys nothing
        assert own["AWS_ENDPOINT_URL_S3"] == {"Ref": "AWS::NoValue"}, name
        assert set(document[name]) == set(shared) | set(own), name
        values = document[name]
        assert values["AWS_ENDPOINT_URL_S3"] == "http://host.docker.internal:5099"
        assert (values["ORIGINALS_BUCKET"], values["CACHE_BUCKET"]) == (local.ORIGINALS, local.CACHE)
        assert all(isinstance(v, str) for v in values.values())
    assert document["ResizeFunction"]["PLAYGROUND"] == "false"
    assert document["PrewarmFunction"]["DISTRIBUTION_ID"] == ""


def test_sam_env_writes_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from devserver import sam_env

    monkeypatch.delenv("S3_PORT", raising=False)
    out = tmp_path / "sam-env.json"
    assert sam_env.main(["--out", str(out)]) == 0
    document = json.loads(out.read_text())
    assert document["ResizeFunction"]["AWS_ENDPOINT_URL_S3"] == "http://host.docker.internal:5005"


def test_make_sam_env_is_a_target() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^sam-env:.*## ", makefile, re.M) and "devserver.sam_env" in makefile


# ---- make serve's embedded S3 and its upload watcher ----


def test_the_embedded_s3_wakes_the_watcher_for_writes_to_the_originals_bucket_only() -> None:
    # given make serve's S3 on a free port, when variants are written to the cache bucket, objects read, and then
    # an original uploaded (a presigned PUT, as the playground does) and deleted, then only those two writes wake it
    import urllib.request

    import boto3
    from botocore.config import Config
    from devserver.serve import EmbeddedS3

    server = EmbeddedS3("127.0.0.1", 0, "watched-originals")
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server.server_port}"
        s3 = boto3.client("s3", endpoint_url=endpoint, config=Config(signature_version="s3v4"))
        for bucket in ("watched-originals", "other-cache"):
            s3.create_bucket(Bucket=bucket)
        server.written.clear()
        s3.put_object(Bucket="other-cache", Key="v1/watched-originals/x.jpg/w=10", Body=b"variant")
        s3.get_object(Bucket="other-cache", Key="v1/watched-originals/x.jpg/w=10")["Body"].read()
        s3.list_objects_v2(Bucket="watched-originals")
        assert not server.written.is_set()
        url = s3.generate_presigned_url("put_object", Params={"Bucket": "watched-originals", "Key": "a/cat.jpg"})
        urllib.request.urlopen(urllib.request.Request(url, data=b"cat", method="PUT",
                                                      headers={"Content-Type": "image/jpeg"}), timeout=10).read()
        assert server.written.is_set()
        assert s3.get_object(Bucket="watched-originals", Key="a/cat.jpg")["Body"].read() == b"cat"  # written first
        server.written.clear()
        s3.delete_object(Bucket="watched-originals", Key="a/cat.jpg")
        assert server.written.is_set()
    finally:
        server.stop()
