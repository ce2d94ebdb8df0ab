"""The SAM template: lints clean, sets every variable the code reads, and wires buckets, API and policies safely."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from imageorigin.config import Settings

TEMPLATE = ROOT / "infra" / "template.yaml"
PACKAGE = ROOT / "functions" / "resize" / "imageorigin"


@pytest.fixture(scope="module")
def template() -> dict:
    from devserver.sam_env import load_template

    return load_template(TEMPLATE)


def functions(template: dict) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}


def test_the_template_sets_only_variables_the_code_reads(template: dict) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    unknown = [name for name in variables if name not in Settings.env_names() and not name.startswith("POWERTOOLS_")]
    assert not unknown, f"set in infra/template.yaml but read by no code: {unknown}"
    assert {"ORIGINALS_BUCKET", "CACHE_BUCKET", "KEY_VERSION", "SIGNING_KEYS_SOURCE"} <= set(variables)


def test_the_template_does_not_restate_config_defaults(template: dict) -> None:
    # a literal the template sets must differ from config's default (else it is a second copy that can drift), and
    # a parameter that feeds a variable must default to config's default
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    defaults = {env: str(default) for env, default, _ in Settings.documented()}
    restated = [name for name, value in variables.items()
                if isinstance(value, str) and name in defaults and value == defaults[name] and value]
    assert not restated, f"infra/template.yaml restates config.py's defaults: {restated}"
    parameters = template["Parameters"]
    for name, value in variables.items():
        if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in parameters and name in defaults:
            assert str(parameters[value["Ref"]].get("Default")) == defaults[name], (name, value["Ref"])


def test_only_config_reads_the_environment() -> None:
    readers = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
               if re.search(r"os\.environ|os\.getenv|getenv\(", p.read_text())]
    assert readers == ["config.py"]


def test_importing_the_handler_makes_no_aws_client() -> None:
    # no boto3 and no AWS client at import time: moto must be able to intercept every client. (The X-Ray SDK,
    # which powertools' Tracer imports, makes its own sampling client for the local X-Ray daemon: not AWS.)
    code = ("import gc, sys, imageorigin.handlers.api; from botocore.client import BaseClient; "
            "print('boto3' in sys.modules, sum(isinstance(o, BaseClient) and o.meta.service_model.service_name"
            " != 'xray' for o in gc.get_objects()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT / "functions" / "resize")
    assert out.stdout.split() == ["False", "0"]


def test_image_code_never_imports_boto3() -> None:
    pure = [*(PACKAGE / "render").glob("*.py"), *(PACKAGE / "grammars").glob("*.py"),
            *(PACKAGE / name for name in ("model.py", "formats.py", "errors.py", "config.py", "deadline.py"))]
    assert len(pure) > 12
    for module in pure:
        assert "boto" not in module.read_text(), module


def test_functions_point_at_real_handlers_on_a_current_runtime(template: dict) -> None:
    globals_ = template["Globals"]["Function"]
    assert globals_["Runtime"] in {"python3.12", "python3.13", "python3.14"}
    assert globals_["Architectures"] == ["x86_64"]  # the SIMD resize has no Linux arm64 wheel
    for name, resource in functions(template).items():
        props = resource["Properties"]
        assert (TEMPLATE.parent / props["CodeUri"]).resolve() == (ROOT / "functions" / "resize").resolve()
        module, _, attribute = props["Handler"].rpartition(".")
        assert callable(getattr(importlib.import_module(module), attribute)), name
        assert resource["Metadata"]["BuildMethod"] == "makefile"
        makefile = (ROOT / "functions" / "resize" / "Makefile").read_text()
        targets = {target for line in makefile.splitlines() if line.startswith("build-")
                   for target in line.partition(":")[0].split()}
        assert f"build-{name}" in targets, name


@pytest.mark.parametrize("bucket", ["OriginalsBucket", "CacheBucket"])
def test_buckets_are_private_and_encrypted(template: dict, bucket: str) -> None:
    props = template["Resources"][bucket]["Properties"]
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    policy = template["Resources"][f"{bucket}Policy"]["Properties"]["PolicyDocument"]["Statement"]
    assert any(s["Effect"] == "Deny" and "aws:SecureTransport" in str(s["Condition"]) for s in policy)


def test_cache_bucket_expires_variants(template: dict) -> None:
    rules = template["Resources"]["CacheBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert any(r.get("ExpirationInDays") == {"Ref": "CacheExpirationDays"} for r in rules)


def test_resize_function_may_only_read_originals(template: dict) -> None:
    statements = [s["Fn::If"][1] if "Fn::If" in s else s
                  for s in template["Resources"]["ResizeFunction"]["Properties"]["Policies"][0]["Statement"]]
    on_originals = [s for s in statements if "-originals-" in str(s["Resource"])]
    actions = {a for s in on_originals for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert actions == {"s3:GetObject", "s3:ListBucket"}
    assert "*" not in str([s["Action"] for s in statements])
    keys = [s for s in statements if s["Sid"] == "ReadSigningKeys"]
    assert keys and keys[0]["Action"] == "ssm:GetParameter" and "${SigningKeysParameter}" in str(keys[0]["Resource"])


def test_api_returns_binary_and_routes_every_key(template: dict) -> None:
    api = template["Resources"]["ImageApi"]["Properties"]
    assert api["BinaryMediaTypes"] == ["*~1*"]
    events = template["Resources"]["ResizeFunction"]["Properties"]["Events"]
    assert {(e["Properties"]["Path"], e["Properties"]["Method"]) for e in events.values()} == {
        ("/{proxy+}", "GET"), ("/{proxy+}", "HEAD"), ("/{proxy+}", "POST")}  # POST: /animations, else 405


@pytest.mark.early
def test_cfn_lint_passes() -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run([str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.early
def test_sam_validate_lint_passes() -> None:
    sam = shutil.which("sam", path=str(Path(sys.executable).parent)) or shutil.which("sam")
    if sam is None:
        pytest.skip("the SAM CLI is not installed (make test installs it)")
    result = subprocess.run([sam, "validate", "--lint", "--template", str(TEMPLATE), "--region", "us-east-1"],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "SAM_CLI_TELEMETRY": "0"})  # a test sends nothing to AWS
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_documents_every_setting_with_its_default() -> None:
    readme = (ROOT / "README.md").read_text()
    for env, default, _ in Settings.documented():
        row = f"| `{env}` | " + (f"`{default}`" if default != "" else "(empty)") + " |"
        assert row in readme, f"README's configuration table lacks or misstates {env}"


def test_what_only_some_requests_need_is_not_imported_with_the_handler() -> None:
    # the cold start pays for none of: thumbor's grammar, powertools parameters (keys in SSM), the HEIF plugin,
    # the X-Ray SDK when tracing is off, the SIMD resampler (a cache hit renders nothing)
    code = ("import sys, imageorigin.handlers.api; "
            "print(*[m in sys.modules for m in ('imageorigin.thumbor', 'aws_lambda_powertools.utilities.parameters',"
            " 'pillow_heif', 'aws_xray_sdk', 'cykooz_resizer')])")
    env = {**os.environ, "POWERTOOLS_TRACE_DISABLED": "true"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT / "functions" / "resize", env=env)
    assert out.stdout.split() == ["False"] * 5
