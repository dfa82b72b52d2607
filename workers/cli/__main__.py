"""``python -m workers.cli``: the ``signoff`` command line (how the supervisor starts children)."""

from workers.cli import main

main()
