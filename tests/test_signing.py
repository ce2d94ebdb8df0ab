"""Signed query-API URLs (HMAC-SHA256 s=, exp=), key rotation, keys from SSM, and the unsigned-request policy:
presets-only mode, size allow-lists and steps. Through the real handler on moto; answers decoded."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import boto3
import pytest
from conftest import CACHE, api_event, invoke

from imageorigin import runtime, signing

KEY = "photos/progressive.jpg"  # 1201x800
OLD, NEW = "old-key-2025", "new-key-2026"


def signed(query: dict[str, str], secret: str = NEW, key: str = KEY) -> dict[str, list[str]]:
    multi = {name: [value] for name, value in query.items()}
    return multi | {"s": [signing.sign_query(secret.encode(), key, multi)]}


@pytest.fixture
def keys(s3: object, monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.setenv("SIGNING_KEYS", f"{NEW},{OLD}")  # both active while URLs signed with the old one live
    return s3


def test_the_message_is_documented_and_reproducible() -> None:
    query = {"w": ["300"], "exp": ["1900000000"], "fm": ["webp"], "s": ["ignored"]}
    assert signing.query_message("a b/ü.jpg", query) == "/a%20b/%C3%BC.jpg?exp=1900000000&w=300"
    expected = hmac.new(b"k", b"/a%20b/%C3%BC.jpg?exp=1900000000&w=300", hashlib.sha256).hexdigest()
    assert signing.sign_query(b"k", "a b/ü.jpg", query) == expected


def test_a_signed_url_renders(keys: object) -> None:
    answer = invoke(api_event(f"/{KEY}", signed({"w": "300"})))
    assert answer.status == 200 and answer.image.size == (300, 200)


def test_base64url_signatures_are_accepted_too(keys: object) -> None:
    query = {"w": ["300"]}
    digest = hmac.new(NEW.encode(), signing.query_message(KEY, query).encode(), hashlib.sha256).digest()
    token = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    assert invoke(api_event(f"/{KEY}", query | {"s": [token]})).image.size == (300, 200)


def test_unsigned_requests_are_refused_when_a_key_is_set(keys: object) -> None:
    answer = invoke(api_event(f"/{KEY}", {"w": "300"}))
    assert (answer.status, answer.json["code"]) == (403, "signature_required")
    assert keys.list_objects_v2(Bucket=CACHE).get("KeyCount", 0) == 0


def test_a_changed_parameter_breaks_the_signature(keys: object) -> None:
    query = signed({"w": "300"}) | {"w": ["3000"]}
    answer = invoke(api_event(f"/{KEY}", query))
    assert (answer.status, answer.json["code"]) == (403, "bad_signature")
    moved = invoke(api_event("/photos/2024/street.jpg", signed({"w": "300"})))  # another key, same signature
    assert moved.status == 403


def test_the_format_is_not_signed_so_the_edge_may_resolve_fm_auto(keys: object) -> None:
    query = signed({"w": "300", "fm": "auto"}) | {"fm": ["webp"]}
    answer = invoke(api_event(f"/{KEY}", query))
    assert answer.status == 200 and answer.image.format == "WEBP"


def test_rotation_both_keys_verify_until_the_old_one_is_removed(keys: object, monkeypatch) -> None:
    old_url = signed({"w": "200"}, secret=OLD)
    assert invoke(api_event(f"/{KEY}", old_url)).image.size == (200, 133)
    assert invoke(api_event(f"/{KEY}", signed({"w": "201"}, secret=NEW))).image.size == (201, 134)
    monkeypatch.setenv("SIGNING_KEYS", NEW)
    runtime.reset()
    retired = invoke(api_event(f"/{KEY}", old_url))
    assert (retired.status, retired.json["code"]) == (403, "bad_signature")


def test_expiry(keys: object) -> None:
    past = signed({"w": "300", "exp": str(int(time.time()) - 5)})
    answer = invoke(api_event(f"/{KEY}", past))
    assert (answer.status, answer.json["code"]) == (403, "signature_expired")
    future = signed({"w": "300", "exp": str(int(time.time()) + 600)})
    fresh = invoke(api_event(f"/{KEY}", future))
    assert fresh.status == 200 and fresh.image.size == (300, 200)
    max_age = int(fresh.headers["Cache-Control"].rpartition("max-age=")[2])
    assert 590 <= max_age <= 600  # no cache keeps it past its expiry
    tampered = future | {"exp": [str(int(time.time()) + 10**6)]}
    assert invoke(api_event(f"/{KEY}", tampered)).json["code"] == "bad_signature"


@pytest.mark.parametrize(("query", "parameter"), [
    ({"w": ["300"], "s": ["xyz"]}, "s"),
    ({"w": ["300"], "s": ["g" * 64]}, "s"),
    ({"w": ["300"], "s": ["a" * 64, "b" * 64]}, "s"),
    ({"w": ["300"], "exp": ["1900000000"]}, "exp"),
])
def test_malformed_signatures_are_400(keys: object, query: dict, parameter: str) -> None:
    answer = invoke(api_event(f"/{KEY}", query))
    assert (answer.status, answer.json["parameter"]) == (400, parameter)


def test_bad_expiry_is_400(keys: object) -> None:
    query = {"w": ["300"], "exp": ["tomorrow"]}
    query["s"] = [signing.sign_query(NEW.encode(), KEY, query)]
    assert invoke(api_event(f"/{KEY}", query)).json["parameter"] == "exp"


def test_keys_from_ssm_parameter_store(s3: object, monkeypatch) -> None:
    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name="/imageorigin/signing-keys", Value=f"{NEW},{OLD}", Type="SecureString")
    monkeypatch.setenv("SIGNING_KEYS_SOURCE", "ssm:/imageorigin/signing-keys")
    assert invoke(api_event(f"/{KEY}", signed({"w": "120"}, secret=OLD))).image.size == (120, 80)
    assert invoke(api_event(f"/{KEY}", {"w": "120"})).json["code"] == "signature_required"


def test_keys_from_secrets_manager(s3: object, monkeypatch) -> None:
    boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="imageorigin-keys", SecretString=NEW)
    monkeypatch.setenv("SIGNING_KEYS_SOURCE", "secretsmanager:imageorigin-keys")
    assert invoke(api_event(f"/{KEY}", signed({"w": "130"}))).image.size == (130, 87)


def test_presets_only_mode(s3: object, monkeypatch) -> None:
    monkeypatch.setenv("PRESETS_ONLY", "true")
    thumb = invoke(api_event(f"/{KEY}", {"preset": "thumb", "fm": "webp"}))
    assert thumb.status == 200 and (thumb.image.size, thumb.image.format) == ((150, 150), "WEBP")
    # the same preset spelled out, or as the canonical path the edge sends, is the preset
    spelled = invoke(api_event(f"/{KEY}", {"w": "150", "h": "150", "fit": "cover"}))
    assert spelled.status == 200
    canonical = invoke(api_event(f"/v1/{KEY}/w=540,fit=inside,enlarge=0,bg=ffffff,fm=jpeg,q=80"))
    assert canonical.status == 200 and canonical.image.size == (540, 360)
    other = invoke(api_event(f"/{KEY}", {"w": "151"}))
    assert (other.status, other.json["code"]) == (403, "signature_required")
    assert invoke(api_event(f"/{KEY}")).status == 200  # the original itself renders nothing


def test_presets_only_still_serves_signed_urls(keys: object, monkeypatch) -> None:
    monkeypatch.setenv("PRESETS_ONLY", "true")
    assert invoke(api_event(f"/{KEY}", signed({"w": "151"}))).image.size == (151, 101)
    assert invoke(api_event(f"/{KEY}", {"preset": "small"})).image.size == (540, 360)


def test_size_allow_list(s3: object, monkeypatch) -> None:
    monkeypatch.setenv("ALLOWED_WIDTHS", "320,640")
    assert invoke(api_event(f"/{KEY}", {"w": "640"})).image.size == (640, 426)
    refused = invoke(api_event(f"/{KEY}", {"w": "641"}))
    assert (refused.status, refused.json["parameter"]) == (400, "w")
    assert "320, 640" in refused.json["message"]
    assert s3.list_objects_v2(Bucket=CACHE)["KeyCount"] == 1


def test_size_step_rounds_up(s3: object, monkeypatch) -> None:
    monkeypatch.setenv("SIZE_STEP", "100")
    for asked in ("301", "350", "400"):
        assert invoke(api_event(f"/{KEY}", {"w": asked})).image.size == (400, 266)
    assert s3.list_objects_v2(Bucket=CACHE)["KeyCount"] == 1  # three requests, one variant


def test_without_a_key_unsigned_requests_work_as_make_serve_promises(s3: object) -> None:
    assert invoke(api_event(f"/{KEY}", {"w": "100"})).image.size == (100, 67)
    assert invoke(api_event("/unsafe/100x100/" + KEY)).image.size == (100, 100)


@pytest.mark.parametrize("language", ["python", "javascript", "shell"])
def test_the_documented_signers_make_urls_that_verify(keys: object, language: str) -> None:
    import shutil
    import subprocess
    import sys
    from urllib.parse import parse_qs, urlsplit

    from conftest import ROOT

    folder = ROOT / "examples" / "signing"
    key, query = "photos/progressive.jpg", "exp=1900000000&w=240"  # sorted, encoded: what the shell needs
    command = {
        "python": [sys.executable, str(folder / "sign.py"), NEW, key, query + "&fm=webp"],
        "javascript": [shutil.which("node") or "node", str(folder / "sign.js"), NEW, key, query + "&fm=webp"],
        "shell": ["sh", str(folder / "sign.sh"), NEW, key, query],
    }[language]
    if language == "javascript" and shutil.which("node") is None:
        pytest.skip("Node.js is not installed")
    url = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
    parts = urlsplit(url)
    answer = invoke(api_event(parts.path, parse_qs(parts.query)))
    assert answer.status == 200, answer.body
    assert answer.image.size == (240, 160)
