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
    assert result["prewarm"]["largest_ms"] > 0
    assert "ours/vips" in done.stdout
