"""checkov over terraform/: no failed check; every skipped check is skipped inline with a reason.

checkov runs from its own venv (it pins bc-python-hcl2, which clashes with the python-hcl2 of the test
venv); tests/terraform/tftools.py creates that venv on first use, or takes $TASKAPI_CHECKOV.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest

from tests.terraform import tftools
from tests.terraform.conftest import missing


@pytest.fixture(scope="module")
def checkov_report() -> dict[str, Any]:
    try:
        checkov = tftools.ensure_checkov()
    except (OSError, subprocess.CalledProcessError) as exc:
        missing(f"checkov could not be installed in its own venv: {exc}")
        raise
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env.update(BC_SKIP_MAPPING="TRUE", CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false", LOG_LEVEL="ERROR")
    result = subprocess.run(
        [checkov, "--directory", str(tftools.TERRAFORM_DIR), "--framework", "terraform",
         "--skip-download", "--output", "json"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert result.stdout.strip(), f"checkov printed nothing ({result.returncode}):\n{result.stderr[-4000:]}"
    report = json.loads(result.stdout)
    if isinstance(report, list):  # one entry per framework
        [report] = [r for r in report if r.get("check_type") == "terraform"]
    return dict(report)


@pytest.mark.timeout(900)
def test_checkov_passes(checkov_report: dict[str, Any]) -> None:
    results = checkov_report["results"]
    failed = [
        f"{c['check_id']} {c['check_name']} -- {c['resource']} ({c['file_path']}:{c['file_line_range'][0]})"
        for c in results["failed_checks"]
    ]
    assert not failed, "checkov failed checks:\n" + "\n".join(failed)
    assert checkov_report["summary"]["passed"] > 100


@pytest.mark.timeout(900)
def test_every_skipped_check_gives_a_reason(checkov_report: dict[str, Any]) -> None:
    for check in checkov_report["results"]["skipped_checks"]:
        reason = (check.get("check_result", {}).get("suppress_comment") or "").strip()
        assert len(reason) > 15, f"{check['check_id']} on {check['resource']} is skipped without a reason"
