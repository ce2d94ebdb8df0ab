"""?picture markup that works where it is pasted: absolute URLs, never wider than its container or the original,
a placeholder only where it cannot show through, a choice of loading priority; the playground route."""

from __future__ import annotations

import pytest
from conftest import api_event, fixture, html_tags, invoke
from fakes import MemoryStore

from imageorigin import picture, runtime
from imageorigin.errors import BadParameter
from imageorigin.grammars.query import parse_picture
from imageorigin.ladder import LadderEntry, Manifest

API = "https://abc123.execute-api.eu-west-1.amazonaws.com/Prod"  # the Host and stage of events/api_resize.json


def img(markup: str) -> dict[str, str]:
    return next(attrs for tag, attrs in html_tags(markup) if tag == "img")


def urls(markup: str) -> list[str]:
    found = []
    for tag, attrs in html_tags(markup):
        for candidate in attrs.get("srcset", "").split(", "):
            if candidate:
                found.append(candidate.rsplit(" ", 1)[0])
        if tag == "img":
            found.append(attrs["src"])
    return found


def manifest(width: int, fmt: str = "jpeg", widths: tuple[int, ...] = (1200, 1080, 768, 540, 30)) -> Manifest:
    entries = []
    for w in widths:
        real = min(w, width)  # the ladder never enlarges: a small original's entries stop at its own width
        for f in ("avif", "webp", fmt):
            entries.append(LadderEntry(f"w={w}" + ("" if f == fmt else f"&fm={f}"), f, f"image/{f}", real,
                                       real * 2 // 3, 1000))
    return Manifest("photos/a b.jpg", "etag", width, width * 2 // 3, tuple(entries))


def test_links_are_absolute_under_the_base_and_the_key_is_percent_encoded() -> None:
    markup = picture.html(manifest(2000), link=picture.absolute("https://img.example.com/"))
    assert urls(markup) and all(u.startswith("https://img.example.com/photos/a%20b.jpg?") for u in urls(markup))
    assert "https://img.example.com/photos/a%20b.jpg?w=30" in img(markup)["style"]  # the placeholder too


def test_the_image_never_overflows_its_container() -> None:
    style = img(picture.html(manifest(2000)))["style"]
    assert style.startswith("max-width:100%;height:auto")


def test_lazy_by_default_eager_and_high_priority_on_request() -> None:
    lazy = img(picture.html(manifest(2000)))
    assert lazy["loading"] == "lazy" and "fetchpriority" not in lazy
    hero = img(picture.html(manifest(2000), priority="high"))
    assert (hero["loading"], hero["fetchpriority"]) == ("eager", "high")


def test_candidates_are_never_wider_than_the_original() -> None:
    markup = picture.html(manifest(700))
    for tag, attrs in html_tags(markup):
        for candidate in attrs.get("srcset", "").split(", "):
            if candidate:
                assert int(candidate.rsplit(" ", 1)[1].rstrip("w")) <= 700
        if tag == "img":
            assert int(attrs["width"]) == 700
    assert "700w" in markup and "768w" not in markup


def test_a_placeholder_only_behind_opaque_originals() -> None:
    assert "background-image" in img(picture.html(manifest(2000, "jpeg")))["style"]
    for fmt in ("png", "webp", "gif"):  # may be transparent: a placeholder would show through
        assert "background" not in img(picture.html(manifest(2000, fmt)))["style"]


def test_priority_is_a_picture_parameter_in_the_canonical_query() -> None:
    request = parse_picture("/photos/cat.jpg", {"picture": [""], "priority": ["high"]}, "text/html")
    assert request.priority == "high" and request.canonical_query() == "picture=html&priority=high"
    assert parse_picture("/photos/cat.jpg", {"picture": ["json"]}).canonical_query() == "picture=json"
    with pytest.raises(BadParameter) as refused:
        parse_picture("/photos/cat.jpg", {"picture": [""], "priority": ["urgent"]})
    assert str(refused.value).startswith("priority:")


@pytest.fixture
def memory(monkeypatch: pytest.MonkeyPatch) -> MemoryStore:
    store = MemoryStore()
    store.add_original("photos/banner.jpg", fixture("banner.jpg"))  # 1201x100: the ladder at an eighth of the cost
    monkeypatch.setattr(runtime, "store", lambda: store)
    return store


def staged(event: dict) -> dict:
    """As API Gateway sends it on its own domain: the stage in requestContext.path, not in path."""
    event["requestContext"]["path"] = "/Prod" + event["path"]
    return event


def test_the_handler_links_to_the_request_s_own_host_and_stage(memory: MemoryStore) -> None:
    html = invoke(staged(api_event("/photos/banner.jpg", {"picture": "", "priority": "high"},
                                   accept="text/html")))
    assert html.status == 200 and all(u.startswith(f"{API}/photos/banner.jpg?") for u in urls(html.body.decode()))
    assert img(html.body.decode())["fetchpriority"] == "high"
    data = invoke(staged(api_event("/photos/banner.jpg", {"picture": "json"}))).json
    assert all(v["url"].startswith(f"{API}/photos/banner.jpg?") for v in data["variants"])
    # a custom domain (no stage in the path): the host alone
    data = invoke(api_event("/photos/banner.jpg", {"picture": "json"})).json
    assert all(v["url"].startswith(f"{API.removesuffix('/Prod')}/photos/") for v in data["variants"])


def test_public_base_url_wins_over_the_host(memory: MemoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://img.example.com/")
    runtime.reset()
    data = invoke(api_event("/photos/banner.jpg", {"picture": "json"})).json
    assert all(v["url"].startswith("https://img.example.com/photos/banner.jpg?") for v in data["variants"])


def test_a_forged_host_gives_root_relative_links(memory: MemoryStore) -> None:
    event = api_event("/photos/banner.jpg", {"picture": "json"}, headers={"Host": "evil.example/<x>"})
    assert all(v["url"].startswith("/photos/") for v in invoke(event).json["variants"])


def test_the_playground_is_served_only_when_enabled(memory: MemoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    assert invoke(api_event("/_playground")).status == 404  # off by default: an original's key like any other
    monkeypatch.setenv("PLAYGROUND", "true")
    runtime.reset()
    page = invoke(api_event("/_playground"))
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    assert 'src="_playground/app.js"' in page.body.decode()  # read relative to the page: any stage, any host
    assert invoke(api_event("/_playground/app.js")).headers["Content-Type"].startswith("text/javascript")
    assert invoke(api_event("/_playground/")).headers["Location"] == "../_playground"
    for name in ("../config.py", "nope.js", "%2e%2e/config.py", ".hidden.js"):
        assert invoke(api_event(f"/_playground/{name}")).status == 404
