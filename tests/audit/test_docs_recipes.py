"""The plain-Python proof check in docs/security.md, run as printed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from signoff import audit
from signoff.audit.proofs import Prover
from signoff.runtime import Runtime
from tests.audit.helpers import fill

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def proof_recipe() -> str:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("### Inclusion proofs"):]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "no Python block in the inclusion proofs section"
    return match.group(1)


def test_the_documented_proof_check_accepts_a_proof_and_refuses_a_forged_one(
        rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(rt, 1500)
    audit.sign_checkpoint(rt)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pinned-audit-keys.json").write_text(json.dumps(rt.audit_keys.jwks()))
    code = proof_recipe()
    for seq in (1, 700, 1024, 1500):
        proof = Prover(rt).prove(f"seq:{seq}").to_dict()
        (tmp_path / "proof.json").write_text(json.dumps(proof))
        exec(compile(code, "security.md", "exec"), {})
    proof["entry"]["actor"] = "mallory"
    (tmp_path / "proof.json").write_text(json.dumps(proof))
    with pytest.raises(AssertionError):
        exec(compile(code, "security.md", "exec"), {})
    proof = Prover(rt).prove("seq:9").to_dict()
    proof["path"][2] = "00" * 32
    (tmp_path / "proof.json").write_text(json.dumps(proof))
    with pytest.raises(AssertionError):
        exec(compile(code, "security.md", "exec"), {})
