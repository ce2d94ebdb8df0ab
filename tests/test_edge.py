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
from urllib.parse import parse_qs, unquote

import pytest
from conftest import ROOT

from imageorigin.errors import ImageServiceError
from imageorigin.grammars import edge as spec
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


def terser() -> None:
    """The minifier the template's copy is made with: make test installs it (npm ci --prefix edge)."""
    node()
    if not embed.TERSER.exists():
        if os.environ.get("REQUIRE_NODE"):
            pytest.fail(f"terser is required (REQUIRE_NODE is set) but {embed.TERSER} is missing: npm ci --prefix edge")
        pytest.skip("terser is not installed (npm ci --prefix edge): the minified copy is not checked")


def run_node(code_path: Path, table_path: Path = EDGE / "vectors.json") -> dict:
    out = subprocess.run([node(), str(EDGE / "run-vectors.js"), str(code_path), str(table_path)],
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
    for topic in ("alias", "order", "unknown", "chrome", "chromium", "firefox", "safari", "old browser", "q=0",
                  "curl", "transparent", "animated", "gif", "bg", "space", "plus", "%25", "unicode", "= and ,", "%2f",
                  "dot-dot", "no extension", "several dots", "1024 bytes", "canonical", "fm=original", "picture",
                  "preset", "signed"):
        assert topic in names, topic


def test_template_carries_the_function_as_written() -> None:
    terser()
    assert embed.embedded(TEMPLATE.read_text()) == embed.minified(), "run make edge"


def test_deployed_function_fits_cloudfront_and_uses_only_template_parameters(template: dict) -> None:
    code = embed.embedded(TEMPLATE.read_text())
    names = set(re.findall(r"\$\{([A-Za-z0-9]+)\}", code))
    assert names == {"KeyVersion", "MaxOutputSide", "Presets"} <= set(template["Parameters"])
    filled = re.sub(r"\$\{([A-Za-z0-9]+)\}", lambda m: str(template["Parameters"][m.group(1)]["Default"]), code)
    assert len(filled.encode()) < 10 * 1024  # CloudFront Functions' code size limit
    assert json.loads(template["Parameters"]["Presets"]["Default"]) == PARAMETERS["Presets"]


def test_canonical_paths_only_for_keys_that_leave_room_for_a_spec(node_source: dict) -> None:
    """A canonical path is the cache bucket's key: its <version>/<key>/ leaves SPEC_ROOM of S3's MAX_KEY_BYTES for
    the spec (a longer key keeps the query form, which the function answers itself). The table reaches both
    limits exactly."""
    limit, room = node_source["tables"]["MAX_KEY_BYTES"], node_source["tables"]["SPEC_ROOM"]
    paths = [unquote(answer["uri"].partition("?")[0][1:]).encode()
             for answer in node_source["results"] if "uri" in answer]
    prefixes = [path.rpartition(b"/")[0] + b"/" for path in paths
                if path.startswith(PARAMETERS["KeyVersion"].encode() + b"/") and b"fm=" in path.rpartition(b"/")[2]]
    assert max(map(len, paths)) == limit
    assert max(map(len, prefixes)) + room == limit


def test_signed_requests_forward_only_what_the_function_reads(node_source: dict) -> None:
    """`s`, `exp` and the parameters' names (S3 acts on names of its own, and the cache bucket is an origin too)."""
    aliases = node_source["tables"]["ALIASES"]
    forwarded = [parse_qs(answer["uri"].partition("?")[2], keep_blank_values=True)
                 for vector, answer in zip(VECTORS, node_source["results"], strict=True)
                 if "s" in parse_qs(vector["query"], keep_blank_values=True) and "uri" in answer]
    assert len(forwarded) >= 5
    for query in forwarded:
        assert all(name in ("s", "exp") or name.lower() in aliases for name in query), query


# ---- the format tables: generated into edge/viewer-request.js from the registry (imageorigin/formats.py) ----

def run_embed(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EDGE / "embed.py"), *args], capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.fixture
def edge_copy(tmp_path: Path) -> tuple[Path, Path]:
    """Copies of the function and the template, to spoil."""
    terser()
    source, template = tmp_path / "viewer-request.js", tmp_path / "template.yaml"
    shutil.copyfile(EDGE / "viewer-request.js", source)
    shutil.copyfile(TEMPLATE, template)
    return source, template


def test_embed_check_passes() -> None:
    """What `make lint` runs: the tables are the registry's now, and the template carries the function."""
    terser()
    done = run_embed("--check")
    assert (done.returncode, done.stderr) == (0, "")


def test_the_function_carries_the_registrys_tables(node_source: dict, node_deployed: dict) -> None:
    """As Node.js evaluates them, written and minified: the registry's edge_tables(), every one."""
    tables = embed.registry_tables()
    assert {"FORMATS", "EXTENSIONS", "UNIVERSAL", "QUALITY", "OPAQUE", "AUTO", "ANIMATED"} <= set(tables)
    for run in (node_source, node_deployed):
        assert {name: run["tables"].get(name) for name in tables} == tables


def test_embed_check_fails_on_a_stale_table(edge_copy: tuple[Path, Path]) -> None:
    """A table edited by hand (or left behind by a registry change), even when the template carries it."""
    source, template = edge_copy
    tables = embed.registry_tables()
    first = next(iter(tables["QUALITY"]))
    stale = embed.with_tables(source.read_text(), {**tables, "QUALITY": {**tables["QUALITY"], first: 1}})
    source.write_text(stale)
    template.write_text(embed.with_code(template.read_text(), embed.minified(stale)))
    done = run_embed("--check", "--source", str(source), "--template", str(template))
    assert done.returncode == 1
    assert "generated tables differ from imageorigin/formats.py" in done.stderr and "(QUALITY)" in done.stderr
    assert "template.yaml: the embedded CloudFront Function differs" in done.stderr
    assert "run make edge" in done.stderr


def test_embed_check_fails_when_the_registry_changes(edge_copy: tuple[Path, Path]) -> None:
    """A format the registry gains after the last make edge: the tables and the template's copy are both stale."""
    source, template = edge_copy
    tables = embed.registry_tables()
    grown = {**tables, "FORMATS": {**tables["FORMATS"], "jpegxr": "jpegxr"},
             "AUTO": [["jpegxr", "image/jxr", False], *tables["AUTO"]]}
    assert embed.problems(source, template, tables) == []
    found = embed.problems(source, template, grown)
    assert len(found) == 2
    assert "(AUTO, FORMATS)" in found[0] and str(template) in found[1]


def test_embed_check_fails_on_a_stale_template(edge_copy: tuple[Path, Path]) -> None:
    source, template = edge_copy
    source.write_text(source.read_text().replace("'unknown parameter'", "'not a parameter'"))
    done = run_embed("--check", "--source", str(source), "--template", str(template))
    assert done.returncode == 1
    assert "template.yaml: the embedded CloudFront Function differs" in done.stderr
    assert "generated tables" not in done.stderr


def test_embed_check_names_missing_markers(edge_copy: tuple[Path, Path]) -> None:
    source, template = edge_copy
    source.write_text(source.read_text().replace("// END generated", "// end"))
    done = run_embed("--check", "--source", str(source), "--template", str(template))
    assert done.returncode == 1 and "'// END generated' block" in done.stderr


def test_make_edge_writes_the_tables_and_the_template(edge_copy: tuple[Path, Path]) -> None:
    source, template = edge_copy
    good_source, good_template = source.read_text(), template.read_text()
    tables = embed.registry_tables()
    source.write_text(embed.with_tables(good_source, {name: [] for name in tables}))
    template.write_text(embed.with_code(good_template, "var STALE = 1;"))
    done = run_embed("--source", str(source), "--template", str(template))
    assert done.returncode == 0, done.stderr
    assert "with the default parameters (CloudFront allows 10240)" in done.stdout
    assert (source.read_text(), template.read_text()) == (good_source, good_template)


def test_fm_auto_and_bg_follow_the_tables(tmp_path: Path) -> None:
    """The code reads the tables, it does not repeat them: JPEG XL offered first (not for animations), WebP made
    opaque and GIF no longer universal change the answers with no edit to the code."""
    tables = embed.registry_tables()
    changed = {**tables,
               "FORMATS": {**tables["FORMATS"], "jxl": "jxl"},
               "QUALITY": {**tables["QUALITY"], "jxl": 70},
               "AUTO": [["jxl", "image/jxl", False], *tables["AUTO"]],
               "OPAQUE": sorted({*tables["OPAQUE"], "webp"}),
               "UNIVERSAL": [f for f in tables["UNIVERSAL"] if f != "gif"]}
    code = tmp_path / "viewer-request.js"
    code.write_text(embed.with_tables((EDGE / "viewer-request.js").read_text(), changed))
    chromium = "image/jxl,image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
    cases = [
        ("/photos/cat.jpg", chromium, "/v1/photos/cat.jpg/w=300,fit=inside,enlarge=0,fm=jxl,q=70"),
        ("/photos/raw", chromium, "/v1/photos/raw/w=300,fit=inside,enlarge=0,fm=jxl,q=70"),
        ("/fun/earth.gif", chromium, "/v1/fun/earth.gif/w=300,fit=inside,enlarge=0,bg=ffffff,fm=webp,q=80"),
        ("/photos/cat.jpg", "image/avif,image/webp", "/v1/photos/cat.jpg/w=300,fit=inside,enlarge=0,fm=avif,q=60"),
        ("/fun/earth.gif", "image/*", "/v1/fun/earth.gif/w=300,fit=inside,enlarge=0,fm=png"),
        ("/photos/cat.jpg", "image/*", "/v1/photos/cat.jpg/w=300,fit=inside,enlarge=0,bg=ffffff,fm=jpeg,q=80"),
    ]
    table = tmp_path / "vectors.json"
    table.write_text(json.dumps({"parameters": PARAMETERS, "vectors": [
        {"name": path, "path": path, "query": "w=300&fm=auto", "accept": accept} for path, accept, _ in cases]}))
    answers = run_node(code, table)["results"]
    assert [answer.get("uri") for answer in answers] == [uri for _, _, uri in cases]


# ---- the distribution's wiring ----

@pytest.fixture(scope="module")
def template() -> dict:
    from devserver.sam_env import load_template

    return load_template(TEMPLATE)


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
