"""Unicode tricks in what an agent writes (right-to-left overrides, zero-width characters,
look-alike letters) are shown escaped on every card: Slack, Teams and the web inbox, all fed
by the one display helper in ``signoff.cardview.display``."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from policy.identity import canonical_agent
from signoff.cardview.display import HIDDEN_CATEGORIES, safe_name, safe_text, safe_value
from signoff.runtime import Runtime
from tests.conftest import run_intake, run_jobs
from tests.fakes.slack_api import FakeSlack, iter_blocks_text
from tests.fakes.teams_connector import FakeBotFramework
from tests.reliability.support import body, channel_settings, install_teams, send, teams_posts
from tests.teams.conftest import WebServer, texts

RLO, PDF, ZWSP, LRI, PDI = "\u202e", "\u202c", "\u200b", "\u2066", "\u2069"
CYRILLIC_A = "\u0430"
TRICKS = (RLO, PDF, ZWSP, LRI, PDI, CYRILLIC_A, "\u200d", "\ufeff", "\u061c")


def shown_hidden(text: str) -> list[str]:
    return [f"U+{ord(c):04X}" for c in text
            if c not in "\n\t" and unicodedata.category(c) in HIDDEN_CATEGORIES]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_safe_text_leaves_nothing_invisible(text: str) -> None:
    out = safe_text(text)
    assert shown_hidden(out) == []
    if text.isascii() and text.isprintable():
        assert out == text
    # Only hidden characters change, each into its escape; the rest is kept in order.
    assert out == "".join(expected_escape(c) for c in text)


def expected_escape(c: str) -> str:
    if c in "\n\t" or unicodedata.category(c) not in HIDDEN_CATEGORIES:
        return c
    return f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}"


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_safe_name_is_plain_ascii(name: str) -> None:
    out = safe_name(name)
    assert out.isascii() and shown_hidden(out) == []
    if name.isascii() and name.isprintable():
        assert out == name


def test_payload_strings_and_keys_are_made_safe() -> None:
    value = {f"k{ZWSP}ey": [f"a{RLO}b", {"n": 1, "t": True, "x": None}]}
    assert safe_value(value) == {"k\\u200bey": ["a\\u202eb", {"n": 1, "t": True, "x": None}]}


def hostile(rid: str) -> dict[str, object]:
    return body(rid, action="db.export",
                requester=f"agent:p{CYRILLIC_A}yroll{RLO}exe.gnp",
                on_behalf_of=f"fr{CYRILLIC_A}nk@example.com",
                reason=f"routine {RLO}tropxe{PDF} of {ZWSP}data{chr(0xFEFF)}",
                resource=f"warehouse.{LRI}orders{PDI}",
                params={"note": f"pay {RLO}0001$ ot", f"k{ZWSP}": "\u061cv"})


def assert_escaped(where: str, text: str) -> None:
    found = [f"U+{ord(c):04X}" for c in TRICKS if c in text]
    assert not found, f"{where} shows raw {found}"
    for escape in ("\\u202e", "\\u0430", "\\u200b"):
        assert escape in text, f"{where} does not show {escape}"


def test_tricks_are_escaped_on_every_card(redis_url: str, tmp_path: Path, policy_path: Path,
                                          fake_slack: FakeSlack, bf: FakeBotFramework,
                                          rrt: Runtime) -> None:
    install_teams(rrt, bf.service_url)
    send(rrt, hostile("uni-1"))
    run_intake(rrt)
    run_jobs(rrt)
    record = rrt.store.get("uni-1")
    assert record is not None and record.status.value == "pending"
    # The requester is stored in the one canonical form every check compares (invisible and
    # direction-changing characters dropped, case folded); a look-alike letter is a different
    # name, so it stays and every card shows it escaped.
    assert record.requester == canonical_agent(f"agent:p{CYRILLIC_A}yroll{RLO}exe.gnp")
    assert record.requester == f"agent:p{CYRILLIC_A}yrollexe.gnp"

    slack = fake_slack.cards("uni-1")
    assert len(slack) == 1
    assert_escaped("the Slack card", "\n".join(iter_blocks_text(slack[0].blocks or []))
                   + slack[0].text)
    posted = teams_posts(bf, "uni-1")
    assert len(posted) == 1 and posted[0].card is not None
    assert_escaped("the Teams card", texts(posted[0].card) + json.dumps(posted[0].body))

    # The web inbox, signed in as a DBA (demo sign-in), renders the request page.
    web_rt = Runtime(channel_settings(redis_url, tmp_path / "web", policy_path, fake_slack, bf,
                                      demo_sign_in=True))
    server = WebServer(web_rt).start()
    try:
        http = requests.Session()
        http.trust_env = False
        page = http.get(f"{server.url}/inbox/login", timeout=10)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf, page.text[:500]
        signed = http.post(f"{server.url}/inbox/auth/demo", timeout=10,
                           data={"csrf": csrf.group(1), "email": "alice@example.com",
                                 "next": "/inbox"})
        assert signed.status_code == 200, signed.text[:500]
        listing = http.get(f"{server.url}/inbox", timeout=10)
        detail = http.get(f"{server.url}/inbox/r/uni-1", timeout=10)
        assert listing.status_code == detail.status_code == 200
        assert "uni-1" in listing.text
        assert_escaped("the inbox request page", detail.text)
        assert not [c for c in TRICKS if c in listing.text], "the inbox list shows raw tricks"
    finally:
        server.stop()
        web_rt.close()
