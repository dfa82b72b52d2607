"""The evidence report: figures that match the log, every control answered, sampled proofs
that verify, and a PDF that renders."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from signoff.audit.controls import CONTROLS
from signoff.audit.proofs import InclusionProof, check_proof
from signoff.audit.report import collect
from signoff.audit.report_render import render_html, render_json, render_pdf
from signoff.runtime import Runtime
from tests.audit.helpers import load_history
from tests.audit.test_merkle import cli_env
from workers.cli.audit import audit as audit_cli


def pdf_available() -> bool:
    try:
        import weasyprint  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


WANTED = {"CC6.1", "CC6.2", "CC6.3", "CC7.2", "CC8.1", "A.5.15", "A.5.18", "A.8.15", "AC-2",
          "AC-6", "AU-2", "AU-9", "AU-10", "Art. 30"}


def test_figures_match_the_log_and_every_control_is_answered(rt: Runtime) -> None:
    counts = load_history(rt, weeks=12, per_week=20)
    ev = collect(rt, time.time() - 90 * 86400, samples=4)
    assert {c.id for c in CONTROLS} == WANTED
    outcomes: dict[str, int] = {}
    for row in ev.requests.values():
        for k, v in row.items():
            outcomes[k] = outcomes.get(k, 0) + v
    # 90 of the 84 days of history: every request is in the period.
    assert ev.request_count == counts["requests"]
    assert outcomes.get("approved", 0) == counts["approved"] + counts["auto"]
    assert outcomes.get("denied", 0) == counts["denied"]
    assert outcomes.get("timed_out", 0) == ev.timeout_count == counts["timed_out"]
    assert ev.auto_decisions == counts["auto"]
    assert len(ev.decision_seconds) == counts["approved"] + counts["denied"]
    assert ev.median_seconds is not None and ev.p95_seconds is not None
    assert ev.median_seconds <= ev.p95_seconds
    assert sum(ev.approvals_by_person.values()) == counts["approved"]
    assert ev.self_approval_count == counts["self"]
    assert ev.forged_click_count == counts["forged"]
    assert [p["version"] for p in ev.policy_changes] == ["v1", "v2"]
    assert next(k["kid"] for k in ev.key_rotations) == "g2-abc"
    assert len(ev.weekly) >= 12
    assert ev.verification["ok"] and ev.checkpoint["root"]
    assert len(ev.samples) == 4 and all(s["verified"] for s in ev.samples)
    proof = InclusionProof.from_dict(ev.samples[0]["proof"])
    assert check_proof(proof, rt.audit_keys.jwks()).ok

    doc = json.loads(render_json(ev))
    assert {c["id"] for c in doc["controls"]} == WANTED
    assert doc["time_to_decision"]["decided_by_people"] == len(ev.decision_seconds)
    html = render_html(ev)
    for control in WANTED:
        assert control in html
    assert html.count("data:image/png;base64,") == 2 and "INTACT" in html
    # A shorter period counts fewer requests.
    recent = collect(rt, time.time() - 14 * 86400, samples=0)
    assert 0 < recent.request_count < ev.request_count


def test_a_tampered_log_says_so_in_the_report(rt: Runtime) -> None:
    load_history(rt, weeks=2, per_week=10)
    rows = rt.redis.xrange(rt.keys.audit, count=5)
    sid, _fields = rows[3]
    rt.redis.xdel(rt.keys.audit, sid)
    ev = collect(rt, time.time() - 30 * 86400, samples=2)
    assert not ev.verification["ok"]
    assert "TAMPERED" in render_html(ev)


def test_report_command_writes_pdf_html_and_json(rt: Runtime, tmp_path: Path) -> None:
    load_history(rt, weeks=13, per_week=30)
    env = cli_env(rt, tmp_path)
    formats = ("pdf", "html", "json") if pdf_available() else ("html", "json")
    for fmt in formats:
        out = tmp_path / f"report.{fmt}"
        result = CliRunner().invoke(audit_cli, ["report", "--since", "90d", "--format", fmt,
                                                "--out", str(out)], env=env)
        assert result.exit_code == 0, result.output
        assert "chain intact" in result.output
    assert not pdf_available() or (tmp_path / "report.pdf").read_bytes().startswith(b"%PDF")
    assert json.loads((tmp_path / "report.json").read_text())["verification"]["ok"]
    if shutil.which("pdftoppm") and pdf_available():
        subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1",
                        str(tmp_path / "report.pdf"), str(tmp_path / "page")], check=True,
                       timeout=60)
        assert list(tmp_path.glob("page*.png"))


@pytest.mark.skipif(not shutil.which("pdftoppm") or not pdf_available(),
                    reason="poppler-utils or Pango not installed")
def test_pdf_pages_render(rt: Runtime, tmp_path: Path) -> None:
    load_history(rt, weeks=4, per_week=10)
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(render_pdf(collect(rt, time.time() - 90 * 86400, samples=3)))
    subprocess.run(["pdftoppm", "-png", "-r", "40", str(pdf), str(tmp_path / "p")], check=True,
                   timeout=60)
    assert len(list(tmp_path.glob("p*.png"))) >= 3
