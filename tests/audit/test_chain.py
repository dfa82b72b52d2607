"""The hash chain: appends never fork it, and every kind of tampering is found and named."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signoff import audit
from signoff.audit import AuditLog, ProblemKind
from signoff.runtime import Runtime
from tests.audit.helpers import edit, fill, raw, rebuild, rechain, run_together, set_head


def verify(rt: Runtime) -> audit.VerifyReport:
    return audit.verify_store(rt)


def test_clean_chain_verifies_and_concurrent_writers_never_fork_it(rt: Runtime) -> None:
    errors: list[Exception] = []

    def writer(n: int) -> None:
        log = AuditLog(rt.redis, rt.keys)  # its own head cache, like another process
        try:
            for i in range(40):
                log.append(audit.Event.VOTE, f"w{n}-{i}", f"writer-{n}", i=i)
        except Exception as exc:
            errors.append(exc)

    run_together(writer, 4)
    assert not errors
    report = verify(rt)
    assert report.ok, report.to_dict()
    assert report.checked == 160 and report.first_seq == 1 and report.last_seq == 160
    assert [e.seq for e in rt.audit.entries()] == list(range(1, 161))
    assert len(rt.audit.for_request("w2-7")) == 1


def test_secret_looking_details_are_never_written(rt: Runtime) -> None:
    e = rt.audit.append("token_created", "", "cli", token="so_p_secret",
                        nested={"Password": "hunter2", "ok": 1}, params={"a": 1})
    stored = rt.audit.entries()[-1]
    assert stored.details == e.details
    text = str(stored.details)
    assert "so_p_secret" not in text and "hunter2" not in text and "'a': 1" not in text
    assert stored.details["nested"]["ok"] == 1
    assert verify(rt).ok


def test_edited_entry_is_named(rt: Runtime) -> None:
    fill(rt, 12)
    edit(rt, 5, lambda d: d.update(payload_sha256="0" * 64))
    report = verify(rt)
    assert not report.ok
    first = report.first_problem
    assert first.kind is ProblemKind.EDITED and first.seq == 5
    assert len(report.problems) == 1


def test_edited_and_rehashed_entry_is_named_by_the_broken_link(rt: Runtime) -> None:
    fill(rt, 12)
    edit(rt, 5, lambda d: d.update(index=99), rehash=True)
    first = verify(rt).first_problem
    assert first.kind is ProblemKind.BROKEN_LINK and first.suspects == (5, 6)
    assert "seq 5 was rewritten" in first.message


def test_deleted_entry_is_named(rt: Runtime) -> None:
    entries = fill(rt, 12)
    rt.redis.xdel(rt.keys.audit, entries[6].stream_id)  # seq 7
    report = verify(rt)
    assert [(p.kind, p.seq) for p in report.problems] == [(ProblemKind.DROPPED, 7)]
    rt.redis.xdel(rt.keys.audit, entries[7].stream_id, entries[8].stream_id)  # 8, 9
    first = verify(rt).first_problem
    assert first.kind is ProblemKind.DROPPED and first.seq == 7 and "7..9" in first.message


def test_swapped_entries_are_named(rt: Runtime) -> None:
    fill(rt, 12)
    rows = raw(rt)
    (a_id, a), (b_id, b) = rows[4], rows[5]  # seq 5 and 6
    rows[4], rows[5] = (a_id, b), (b_id, a)
    rebuild(rt, rows)
    report = verify(rt)
    assert [(p.kind, p.seq) for p in report.problems] == [(ProblemKind.REORDERED, 5)]
    assert "appears after seq 6" in report.first_problem.message


def test_appended_entry_with_a_forged_hash_is_named(rt: Runtime) -> None:
    entries = fill(rt, 8)
    last = entries[-1]
    rt.redis.xadd(rt.keys.audit, {"seq": 9, "ts": "1.0", "event": "decided",
                                  "request_id": "req-x", "actor": "mallory",
                                  "details": '{"status": "approved"}', "prev": last.hash,
                                  "hash": "f" * 64})
    report = verify(rt)
    kinds = {(p.kind, p.seq) for p in report.problems}
    assert (ProblemKind.EDITED, 9) in kinds and report.first_problem.seq == 9
    assert any(p.kind is ProblemKind.HEAD_MISMATCH for p in report.problems)


def test_well_formed_entry_appended_around_signoff_is_caught(rt: Runtime) -> None:
    entries = fill(rt, 8)
    body = {"seq": 9, "ts": 1.0, "event": "decided", "request_id": "req-x",
            "actor": "mallory", "details": {"status": "approved"}}
    forged = audit.entry_hash(entries[-1].hash, body)
    rt.redis.xadd(rt.keys.audit, {"seq": 9, "ts": "1.0", "event": "decided",
                                  "request_id": "req-x", "actor": "mallory",
                                  "details": '{"status": "approved"}',
                                  "prev": entries[-1].hash, "hash": forged})
    report = verify(rt)
    assert [p.kind for p in report.problems] == [ProblemKind.HEAD_MISMATCH]
    # Signoff's next append chains to its head (seq 8), so the forgery collides.
    rt.audit.append(audit.Event.VOTE, "req-y", "bob@example.com")
    kinds = [(p.kind, p.seq) for p in verify(rt).problems]
    assert (ProblemKind.DUPLICATE, 9) in kinds


def test_truncation_is_found_against_the_signed_checkpoint(rt: Runtime) -> None:
    fill(rt, 20)
    cp = audit.sign_checkpoint(rt)  # seq 21: creating the audit key is itself audited
    assert cp is not None and cp.seq == 21
    assert verify(rt).ok and verify(rt).signed_seq == 21
    rt.redis.xdel(rt.keys.audit, *[sid for sid, _f in raw(rt)[16:]])
    set_head(rt, raw(rt))  # a careful attacker fixes the head too
    report = verify(rt)
    first = report.first_problem
    assert first.kind is ProblemKind.TRUNCATED and first.seq == 17
    assert "17..21" in first.message
    # Even with the stored checkpoints gone, the exported one still tells.
    rt.redis.delete(rt.keys.audit_checkpoints)
    assert verify(rt).ok  # nothing left to compare against inside Redis
    report = audit.verify_store(rt, [cp])
    assert report.first_problem.kind is ProblemKind.TRUNCATED and report.first_problem.seq == 17


def test_rewritten_history_with_a_recomputed_chain_breaks_the_checkpoint(rt: Runtime) -> None:
    fill(rt, 20)
    audit.sign_checkpoint(rt)
    fill(rt, 5, prefix="later")
    rows = raw(rt)
    rows[2][1]["actor"] = "mallory"
    rebuild(rt, rechain(rows))
    set_head(rt, rows)
    report = verify(rt)
    assert [p.kind for p in report.problems] == [ProblemKind.CHECKPOINT_MISMATCH]
    assert report.first_problem.suspects == (1, 21)  # checkpoint at 21 (after the key entry)


def test_forged_checkpoint_is_rejected(rt: Runtime) -> None:
    fill(rt, 5)
    audit.sign_checkpoint(rt)
    (sid, f), = rt.redis.xrange(rt.keys.audit_checkpoints)
    rt.redis.delete(rt.keys.audit_checkpoints)
    rt.redis.xadd(rt.keys.audit_checkpoints, {**f, "seq": "4"}, id=sid)
    report = verify(rt)
    assert report.problems[0].kind is ProblemKind.BAD_CHECKPOINT
    assert report.signed_seq == 0


def test_checkpoint_if_due(rt: Runtime) -> None:
    assert audit.checkpoint_if_due(rt, 60) is None  # empty log
    fill(rt, 3)
    first = audit.checkpoint_if_due(rt, 60, now=1000.0)
    assert first is not None and first.seq == 4  # 3 + the audit key's creation
    fill(rt, 1)
    assert audit.checkpoint_if_due(rt, 60, now=1030.0) is None  # too soon
    assert audit.checkpoint_if_due(rt, 60, now=2000.0).seq == 5
    assert audit.checkpoint_if_due(rt, 60, now=3000.0) is None  # nothing new


TAMPER = st.sampled_from(["edit", "drop", "swap"])


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(min_value=3, max_value=25), data=st.data(), how=TAMPER)
def test_any_single_tampering_is_named_at_its_entry(rt: Runtime, n: int, data: st.DataObject,
                                                    how: str) -> None:
    rt.redis.delete(rt.keys.audit, rt.keys.audit_head, rt.keys.audit_checkpoints)
    rt.audit._head = None
    fill(rt, n)
    target = data.draw(st.integers(min_value=1, max_value=n - 1))
    rows = raw(rt)
    if how == "edit":
        edit(rt, target, lambda d: d.update(index=-1))
        expected = (ProblemKind.EDITED, target)
    elif how == "drop":
        rt.redis.xdel(rt.keys.audit, rows[target - 1][0])
        expected = (ProblemKind.DROPPED, target)
    else:
        (a_id, a), (b_id, b) = rows[target - 1], rows[target]
        rows[target - 1], rows[target] = (a_id, b), (b_id, a)
        rebuild(rt, rows)
        expected = (ProblemKind.REORDERED, target)
    first = verify(rt).first_problem
    assert first is not None and (first.kind, first.seq) == expected


@pytest.mark.parametrize("bad", ['{"seq": "x"}', "not json"])
def test_unreadable_entry_is_named(rt: Runtime, bad: str) -> None:
    fill(rt, 4)
    rows = raw(rt)
    rows[1][1]["details"] = bad
    rebuild(rt, rows)
    first = verify(rt).first_problem
    assert first.seq == 2 and first.kind in (ProblemKind.EDITED, ProblemKind.UNREADABLE)
