"""The benchmark runs (on one tiny generated case): CI checks it works, never how fast anything is."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT


def test_bench_runs_on_a_tiny_case_and_writes_its_results(tmp_path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "bench.bench", "--tiny", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    (case,) = result["cases"]
    assert case["ours_ms"] > 0 and case["usual_ms"] > 0 and case["ours_psnr"] > 30
    assert result["prewarm"]["variants"] == 15 and result["prewarm"]["ours_ms"] > 0
    assert result["cold_start"]["handler_import_ms"] > 0
    first = result["cold_start"]["first_response"]  # a fresh process answered a real request through the handler
    assert first["first_response_ms"] >= first["import_ms"] + first["request_ms"] > 0
    pre = result["prewarm"]
    assert pre["largest_ms"] > 0 and 0 < pre["smaller_encodes_ms"] < pre["encodes_ms"] < pre["ours_ms"]
    assert pre["floor_vs_largest"] > 1
    if result["stages"] is not None:  # libvips installed: the step-by-step comparison ran on the same work
        assert all(result["stages"][step]["ours_ms"] > 0 < result["stages"][step]["vips_ms"]
                   for step in ("decode", "resize", "encode"))
        assert "step by step" in done.stdout
    assert "ours/vips" in done.stdout
