"""The channel-neutral card view: what every channel renders a request from.

The core owns it (with the :class:`~signoff.messenger.Messenger` port that carries it), so the
workers and every channel share one view model and the channels only render it.
"""

from signoff.cardview.view import CardView, VoteLine, build_view

__all__ = ["CardView", "VoteLine", "build_view"]
