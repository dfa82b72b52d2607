"""Re-exports :mod:`signoff.cardview.view` (the card view lives in the core)."""

from signoff.cardview.view import CardView, VoteLine, build_view

__all__ = ["CardView", "VoteLine", "build_view"]
