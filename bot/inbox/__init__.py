"""The web inbox: a third approval channel served by ``signoff web`` under ``/inbox``.

Server-rendered pages (Jinja2) list what the signed-in person may decide, with the same
masked view model as the Slack and Teams cards; votes go through
:func:`signoff.lifecycle.submit_vote`; pages update live over server-sent events relayed from
the ``events`` pub/sub channel. Sign-in is OpenID Connect (authorization code with PKCE), or,
for ``signoff demo`` only, a local sign-in that lists the demo people.
"""
