"""Card rendering: one channel-neutral view model, pure renderers per platform."""

from bot.cards.view import CardView, VoteLine, build_view

__all__ = ["CardView", "VoteLine", "build_view"]
