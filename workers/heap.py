"""The garbage collector in Signoff's long-running processes.

A process starts by loading its whole stack (modules, the policy, botbuilder's schema, the
masking model): some 150,000 objects that live as long as it does. CPython's full collection
walks every one of them each time it runs: 80-100 ms in the web process under load
(bench/load.py), during which every click in flight waits. ``gc.freeze()`` moves what is
alive after start-up out of the collector's reach (the collector itself is unchanged for
everything made later).
"""

from __future__ import annotations

import gc


def freeze_startup() -> None:
    """Collect the start-up garbage, then exempt everything still alive from later
    collections (call once the process has loaded what it keeps)."""
    gc.collect()
    gc.freeze()
