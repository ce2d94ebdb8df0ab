"""The benchmark runs (on one tiny generated case): CI checks it works and what it writes, never how fast anything is.

No assertion here compares one measured time with another, or with a bound: on a shared CI machine any order of two
timings can flip. What is checked is that every part of the bench ran and recorded its fields, that every time is a
positive finite number, and that the ratios it derives are the ratios of the times it recorded.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from conftest import ROOT

CASE_FIELDS = {"case", "ours_ms", "usual_ms", "vips_ms", "ours_psnr", "usual_psnr", "vips_psnr", "ours_bytes",
               "vips_bytes", "ours_peak_mb", "vips_peak_mb", "vips_default_ms", "ours_vs_vips", "ours_vs_vips_default",
               "usual_vs_ours"}
PREWARM_FIELDS = {"variants", "ours_ms", "classic_ms", "speedup", "vips_ms", "largest_member", "largest_ms",
                  "ladder_vs_largest", "encodes_ms", "smaller_encodes_ms", "floor_vs_largest"}
FIRST_RESPONSE_FIELDS = {"interpreter_ms", "import_ms", "request_ms", "first_response_ms"}


def positive(value: object) -> bool:
    """A measured time or size: a real number, finite and above zero (bool is not a number here)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def ratio_of(value: object, numerator: float, denominator: float) -> bool:
    return positive(value) and value == pytest.approx(numerator / denominator)


@pytest.mark.early
def test_bench_runs_on_a_tiny_case_and_writes_its_results(tmp_path) -> None:
    # given one `python -m bench.bench --tiny` run, in its own process as `make bench` runs it
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "bench.bench", "--tiny", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result, stdout = json.loads(out.read_text()), done.stdout
    assert set(result) == {"machine", "runs", "cases", "prewarm", "stages", "cold_start", "encoders", "palettes"}
    assert {(row["dither"], row["palette"]) for row in result["palettes"]} == {
        (d, p) for d in ("floyd-steinberg", "none") for p in ("per frame", "shared")}
    assert all(positive(row["kb"]) and positive(row["psnr"]) for row in result["palettes"])
    assert result["runs"] == 1  # --tiny: one run of everything
    assert result["machine"]["python"] and result["machine"]["pillow"] and result["machine"]["cpus"] >= 1
    with_vips = result["machine"]["libvips"] is not None

    # the one tiny case: ours and the usual recipe timed, ours close to the reference, its output non-empty
    (case,) = result["cases"]
    assert set(case) == CASE_FIELDS
    assert positive(case["ours_ms"]) and positive(case["usual_ms"]) and positive(case["ours_bytes"])
    assert case["ours_psnr"] > 30  # quality of the output, not speed
    assert ratio_of(case["usual_vs_ours"], case["usual_ms"], case["ours_ms"])
    if with_vips:
        assert positive(case["vips_ms"]) and positive(case["vips_bytes"])
        assert ratio_of(case["ours_vs_vips"], case["ours_ms"], case["vips_ms"])
    else:
        assert case["vips_ms"] is None and case["ours_vs_vips"] is None

    # the pre-warm ladder: every time recorded, the ratios it prints made from them
    pre = result["prewarm"]
    assert set(pre) == PREWARM_FIELDS
    assert pre["variants"] == 9 and pre["largest_member"]  # --tiny: 3 widths (LADDER_TINY) x 3 formats
    for name in ("ours_ms", "classic_ms", "largest_ms", "encodes_ms", "smaller_encodes_ms"):
        assert positive(pre[name]), name
    assert ratio_of(pre["speedup"], pre["classic_ms"], pre["ours_ms"])
    assert ratio_of(pre["ladder_vs_largest"], pre["ours_ms"], pre["largest_ms"])
    assert ratio_of(pre["floor_vs_largest"], pre["largest_ms"] + pre["smaller_encodes_ms"], pre["largest_ms"])
    assert positive(pre["vips_ms"]) if with_vips else pre["vips_ms"] is None

    # step by step against libvips, when libvips is installed (make bench; make test does not install it)
    if with_vips:
        stages = result["stages"]
        for step in ("decode", "resize", "encode"):
            assert positive(stages[step]["ours_ms"]) and positive(stages[step]["vips_ms"]), step
            assert ratio_of(stages[step]["ratio"], stages[step]["ours_ms"], stages[step]["vips_ms"]), step
        assert stages["decoded"] and stages["resized"]
        assert "step by step" in stdout
    else:
        assert result["stages"] is None

    # cold start: fresh processes imported the handler, and one answered a real request through it
    cold = result["cold_start"]
    assert positive(cold["handler_import_ms"]) and positive(cold["boto3_pillow_import_ms"])
    assert ratio_of(cold["ratio"], cold["handler_import_ms"], cold["boto3_pillow_import_ms"])
    assert all(positive(ms) for ms in cold["heavy_imports_ms"].values())
    assert cold["imported_at_start"] and all(isinstance(v, bool) for v in cold["imported_at_start"].values())
    first = cold["first_response"]
    assert set(first) == FIRST_RESPONSE_FIELDS
    assert positive(first["import_ms"]) and positive(first["request_ms"]) and positive(first["first_response_ms"])
    assert math.isfinite(first["interpreter_ms"])  # a difference of two processes' wall clocks: no sign asserted

    # the encoder sweep: one row per setting, each timed and sized
    encoders = result["encoders"]
    assert {row["format"] for row in encoders} == {"jpeg", "webp", "avif", "jxl"}
    assert len({(row["format"], row["setting"]) for row in encoders}) == len(encoders)
    assert all(positive(row["ms"]) and positive(row["kb"]) and positive(row["psnr"]) for row in encoders)

    # and it printed its tables
    assert "ours/vips" in stdout and "pre-warm ladder" in stdout and "cold start" in stdout
    assert "encoders" in stdout and "wrote " in stdout
