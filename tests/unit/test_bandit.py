"""bandit over the product's code: no finding of medium or high severity (CI runs this test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["hub", "spoke", "shared", "teleconsult", "dicom_bridge", "config"]


def test_bandit_finds_nothing_of_medium_or_high_severity(tmp_path: Path) -> None:
    report = tmp_path / "bandit.json"
    subprocess.run(
        [sys.executable, "-m", "bandit", "-q", "-r", *PACKAGES, "-f", "json", "-o", str(report)],
        cwd=ROOT,
        check=False,
        timeout=300,
    )
    found = json.loads(report.read_text())
    serious = [
        f"{r['filename']}:{r['line_number']} {r['test_id']} {r['issue_text']}"
        for r in found["results"]
        if r["issue_severity"] in ("MEDIUM", "HIGH")
    ]
    assert found["metrics"]["_totals"]["loc"] > 5000  # it did read the code
    assert not serious, "\n".join(serious)
