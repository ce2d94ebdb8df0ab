"""Bad input is refused cleanly, quickly and in bounded memory; nothing is ever written for it."""

from __future__ import annotations

import json
import subprocess
import sys

import hostile
import pytest
from conftest import ROOT, api_event, invoke
from fakes import MemoryStore
from PIL import Image

from imageorigin import runtime

MB = 1024 * 1024


@pytest.fixture
def memory(monkeypatch: pytest.MonkeyPatch) -> MemoryStore:
    """The handler on the in-memory store (fast, and every call it makes is recorded)."""
    store = MemoryStore()
    monkeypatch.setattr(runtime, "store", lambda: store)
    return store


@pytest.mark.parametrize("name", sorted(hostile.CASES))
@pytest.mark.parametrize("query", [{"w": "300", "h": "300", "fit": "cover"}, {}])
def test_hostile_originals_get_a_clean_answer_and_leave_nothing(memory: MemoryStore, name: str,
                                                                 query: dict[str, str]) -> None:
    data, expected = hostile.CASES[name]
    memory.add_original("uploads/file.png", data)
    answer = invoke(api_event("/uploads/file.png", query))
    if expected == 200:  # harmless oddities (a huge EXIF block, a 100000x1 strip) are served
        if len(data) > 4_500_000 and not query:
            assert answer.status == 302  # an original too large to answer inline
        else:
            assert answer.status == 200
            assert Image.MIME[answer.image.format] == answer.headers["Content-Type"]
        return
    assert answer.status == expected, answer.body[:200]
    assert answer.json["code"] in {"too_large", "undecodable", "unsupported_type"} and answer.json["message"]
    assert answer.headers["Content-Type"] == "application/json"
    assert not memory.variants


# ru_maxrss survives execve on Linux (a child starts with its parent's peak): reset and read the peak from /proc.
MEASURE = """
import json, sys, time
sys.path[:0] = [{package!r}, {tests!r}]
import hostile
from imageorigin import render as transform
from imageorigin.errors import ImageServiceError
from imageorigin.grammars.query import parse

spec = parse("/x.png", {{"w": ["300"], "h": ["300"], "fit": ["cover"]}}).spec
transform.render(hostile.saved("PNG", (64, 64)), spec, transform.Limits())  # warm every import first

def proc_kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

open("/proc/self/clear_refs", "w").write("5")
before = proc_kb("VmRSS")
report = {{}}
for name, (data, _) in hostile.CASES.items():
    start = time.perf_counter()
    try:
        transform.render(data, spec, transform.Limits())
        status = 200
    except ImageServiceError as error:
        status = int(error.status)
    report[name] = {{"status": status, "ms": (time.perf_counter() - start) * 1000}}
growth_kb = proc_kb("VmHWM") - before
print(json.dumps({{"growth_mb": growth_kb / 1024, "cases": report}}))
"""


@pytest.mark.early
def test_bombs_are_refused_in_milliseconds_and_bounded_memory() -> None:
    # given every hostile original, when rendered one after another in a fresh process
    script = MEASURE.format(package=str(ROOT / "functions" / "resize"), tests=str(ROOT / "tests"))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    result = json.loads(out.stdout)
    # then each gets its status, none takes more than a fraction of a second (a hang guard, not a benchmark),
    # and the process's peak memory grew by well under 150 MB over all of them
    for name, case in result["cases"].items():
        assert case["status"] == hostile.CASES[name][1], name
        assert case["ms"] < 1000, f"{name} took {case['ms']:.0f} ms"
    assert result["growth_mb"] < 150, result


def test_eps_never_reaches_ghostscript(monkeypatch: pytest.MonkeyPatch, memory: MemoryStore) -> None:
    from PIL import EpsImagePlugin

    def forbidden(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the EPS plugin was used")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", forbidden)
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", forbidden)
    memory.add_original("doc.eps", hostile.EPS)
    answer = invoke(api_event("/doc.eps", {"w": "100"}))
    assert (answer.status, answer.json["code"]) == (415, "unsupported_type")
    assert "PostScript" in answer.json["message"]


@pytest.mark.parametrize(
    ("size", "query", "expected"),
    [
        ((100_000, 1), {"w": "300", "h": "300", "fit": "cover", "enlarge": "1"}, (300, 300)),
        ((100_000, 1), {"w": "300", "h": "300", "fit": "cover"}, (1, 1)),
        ((1, 100_000), {"w": "300", "h": "300", "fit": "outside", "enlarge": "1"}, (1, 4096)),
        ((100_000, 1), {"w": "300"}, (300, 1)),
        ((100_000, 1), {"w": "300", "h": "300", "fit": "contain"}, (300, 300)),
    ],
)
def test_extreme_aspect_ratios_stay_small(memory: MemoryStore, size: tuple[int, int], query: dict[str, str],
                                          expected: tuple[int, int]) -> None:
    # a 100000x1 image must never become a 30-million-pixel intermediate: crops are taken before scaling
    import zlib

    width, height = size
    rows = b"".join(b"\0" + b"\x80" * width for _ in range(height))
    memory.add_original("strip.png", hostile.png(width, height, idat=zlib.compress(rows)))
    answer = invoke(api_event("/strip.png", query))
    assert answer.status == 200
    assert answer.image.size == expected
