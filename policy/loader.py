"""Reading the policy file, and keeping the last good policy while the file changes.

This is the only module of the package that touches the file system.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from policy.engine import Policy
from policy.errors import PolicyError, PolicyIssue
from policy.parser import MaskingValidator, parse_policy

log = logging.getLogger("signoff.policy")

# How often get() looks at the file's mtime and size.
CHECK_INTERVAL_SECONDS = 1.0


def load_policy(
    path: str | os.PathLike[str], *, masking_validator: MaskingValidator | None = None
) -> Policy:
    """Read and parse the policy file at ``path``.

    Args:
        path: The policy file.
        masking_validator: Checks the ``masking:`` section (the masking engine injects its
            ``MaskingConfig.model_validate``: the engine owns what a profile means); ``None``
            checks shape only.

    Raises:
        PolicyError: The file cannot be read or has errors (every error is listed).
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError([PolicyIssue(0, 0, f"cannot read the policy file: {exc}")], str(file)) from None
    return parse_policy(text, str(file), masking_validator=masking_validator)


class PolicyHolder:
    """The policy in force, re-read when the file changes or on SIGHUP.

    An invalid new file is refused: its errors are logged (and passed to ``on_error``) and
    the last good policy stays in force. The first load must succeed.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        on_error: Callable[[PolicyError], None] | None = None,
        *,
        masking_validator: MaskingValidator | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Load the policy at ``path``.

        Args:
            path: The policy file.
            on_error: Called with the error when a new version is refused.
            masking_validator: Passed to :func:`load_policy`.
            clock: Monotonic clock (tests pass their own).

        Raises:
            PolicyError: The file cannot be loaded now.
        """
        self.path = Path(path)
        self.on_error = on_error
        self.masking_validator = masking_validator
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp = self._file_stamp()
        self._policy = load_policy(self.path, masking_validator=masking_validator)
        self._checked = clock()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def get(self) -> Policy:
        """The current policy, re-read first if the file changed (checked at most once a second)."""
        now = self._clock()
        if now - self._checked >= CHECK_INTERVAL_SECONDS:
            self._checked = now
            stamp = self._file_stamp()
            if stamp is not None and stamp != self._stamp:
                self.reload()
        return self._policy

    def reload(self) -> bool:
        """Re-read the file now.

        Returns:
            True when a valid policy was loaded (even if unchanged); False when the new file
            was refused and the last good policy kept.
        """
        with self._lock:
            stamp = self._file_stamp()
            try:
                policy = load_policy(self.path, masking_validator=self.masking_validator)
            except PolicyError as exc:
                self._stamp = stamp  # do not retry the same broken file every second
                log.error(
                    "policy %s refused, keeping version %s: %s",
                    self.path, self._policy.version, exc,
                )
                if self.on_error is not None:
                    self.on_error(exc)
                return False
            if policy.version != self._policy.version:
                log.info(
                    "policy %s reloaded: version %s -> %s",
                    self.path, self._policy.version, policy.version,
                )
            self._policy = policy
            self._stamp = stamp
            return True

    def install_sighup(self) -> None:
        """Reload on SIGHUP. Call from the main thread (Python delivers signals there).

        Raises:
            RuntimeError: When called from another thread, or where SIGHUP does not exist.
        """
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("install_sighup() must be called from the main thread")
        if not hasattr(signal, "SIGHUP"):
            raise RuntimeError("this platform has no SIGHUP")

        def _handler(signum: int, frame: FrameType | None) -> None:
            # A handler runs between bytecodes of the main thread; reload in a thread so a
            # slow parse never blocks the event loop or deadlocks on our own lock.
            threading.Thread(target=self.reload, name="policy-reload", daemon=True).start()

        signal.signal(signal.SIGHUP, _handler)
