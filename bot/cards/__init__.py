"""The card view moved to the core (:mod:`signoff.cardview`): the workers and every channel
read one view model there. These names stay importable from here for code written before."""

from signoff.cardview import CardView, VoteLine, build_view

__all__ = ["CardView", "VoteLine", "build_view"]
