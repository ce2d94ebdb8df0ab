"""The worst-case bench runs (its --quick subset): CI checks every case answers cleanly, never how fast or how big.

Cheap by construction: --quick is a handful of small cases (a few seconds here; each child has a hard time limit).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from bench import worst
from conftest import ROOT


@pytest.mark.early
def test_quick_worst_cases_all_answer_without_a_server_error(tmp_path) -> None:
    # given the --quick subset, each case in its own pinned process through the real handler
    out = tmp_path / "worst.json"
    done = subprocess.run([sys.executable, "-m", "bench.worst", "--quick", "--out", str(out)], cwd=ROOT, check=False,
                          capture_output=True, text=True, timeout=600)
    # then the run succeeded (it fails only on 500/502 or a crash, never on timing) and wrote one row per case
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    rows = {row["name"]: row for row in json.loads(out.read_text())["cases"]}
    quick = [case for case in worst.CASES if case.quick]
    assert len(quick) >= 3 and list(rows) == [case.name for case in quick]
    for case in quick:
        row = rows[case.name]
        # every case reported (no timeout, guard kill or crash) with a status, and none was a server error
        assert row["failure"] is None and not row["crashed"], row
        assert isinstance(row["status"], int) and row["status"] not in (500, 502), row
        assert row["verdict"] in ("OK", "FAIL")
        assert {"cpu_s", "wall_s", "peak_mb", "baseline_mb"} <= row.keys()
        if 400 <= row["status"] < 500:  # refused: a JSON error naming its code
            assert row["error_code"] and row["error_message"], row
        elif row["status"] == 200:  # answered: an image that decodes to its size
            assert row["output"]["format"] and row["output"]["width"] > 0 < row["output"]["height"], row
    # the table lists every case
    assert all(f"| {case.name} |" in done.stdout for case in quick)
    # the controls are refused, not rendered (which status is the code's choice; a refusal it must be)
    assert 400 <= rows["refused-w4097"]["status"] < 500
    assert 400 <= rows["refused-101-frames"]["status"] < 500


def test_verdicts_follow_the_limits_not_the_machine() -> None:
    # the judging is pure: a 4xx is OK, a 5xx or crash is FAIL and fatal, over a limit is FAIL but not fatal
    refused = worst.judge(worst.Row("r", "/x", "", status=400, error_code="bad_parameter", cpu_s=0.01, peak_mb=40))
    assert (refused.verdict, refused.reason, worst.fatal(refused)) == ("OK", "refused", False)
    slow = worst.judge(worst.Row("s", "/x", "", status=200, cpu_s=worst.CPU_LIMIT_S + 1, peak_mb=100))
    assert slow.verdict == "FAIL" and "cpu" in slow.reason and not worst.fatal(slow)
    big = worst.judge(worst.Row("b", "/x", "", status=200, cpu_s=1, peak_mb=worst.PEAK_LIMIT_MB + 1))
    assert big.verdict == "FAIL" and "peak" in big.reason and not worst.fatal(big)
    broken = worst.judge(worst.Row("e", "/x", "", status=500, error_code="internal_error", cpu_s=0.1, peak_mb=50))
    assert broken.verdict == "FAIL" and worst.fatal(broken)
    timeout = worst.judge(worst.Row("t", "/x", "", failure="timeout after 120 s"))
    assert timeout.verdict == "FAIL" and not worst.fatal(timeout)
