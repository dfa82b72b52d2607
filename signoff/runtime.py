"""The per-process bundle of long-lived objects: Redis clients, store, audit, queue, policy.

Built once from :class:`~signoff.settings.Settings` at process start and passed to whatever
needs it; rq jobs reach it through :func:`current` (set by the worker before it starts).
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import redis
from rq import Queue, Retry
from rq.serializers import JSONSerializer

from policy import Policy, PolicyHolder
from signoff import tracing
from signoff.audit import AuditLog, Event, seal_after
from signoff.cards import CardLedger
from signoff.job_names import URGENT_JOBS
from signoff.masking import Masker, MaskingConfig
from signoff.redis_conn import connect
from signoff.settings import Settings, load_settings
from signoff.signing_keys import KeyRing, Purpose
from signoff.store import Store
from signoff.tokens import TokenStore

log = logging.getLogger(__name__)

_current: Runtime | None = None

# Finished jobs leave no record (nothing reads their results; each would cost Redis memory
# per request for rq's result TTL). Failed jobs are kept as rq keeps them.
RESULT_TTL = 0
_MASKERS: dict[bytes, Masker] = {}


class Runtime:
    """Everything a Signoff process shares.

    Args:
        settings: the frozen settings; ``redis_url`` must be set (the CLI starts the embedded
            server first when it is not).
    """

    def __init__(self, settings: Settings) -> None:
        if not settings.redis_url:
            raise ValueError("Runtime needs settings.redis_url (start the embedded Redis first)")
        self.settings = settings
        self.keys = settings.keys
        self.redis = connect(settings.redis_url)
        self.redis_bytes = connect(settings.redis_url, decode=False)
        self.store = Store(self.redis, self.keys, wait_replicas=settings.redis_wait_replicas,
                           wait_timeout_ms=settings.redis_wait_timeout_ms)
        self.audit = AuditLog(self.redis, self.keys, index_ttl=settings.record_ttl)
        if settings.audit_checkpoint_per_decision:
            self.audit.after_append = seal_after(self)
        self._audited_policy: str | None = None
        self._masking_config: tuple[str, MaskingConfig] | None = None
        self.cards = CardLedger(self.redis, self.keys, ttl=settings.record_ttl)
        self.tokens = TokenStore(self.redis, self.keys, directory=lambda: self.policy.directory)
        self.urgent_queue = Queue(self.keys.urgent_queue, connection=self.redis_bytes,
                                  serializer=JSONSerializer)
        self.queue = Queue(self.keys.queue, connection=self.redis_bytes,
                           serializer=JSONSerializer)

    @cached_property
    def audit_keys(self) -> KeyRing:
        """The keys that sign audit checkpoints (their public keys are kept forever)."""
        return KeyRing(self, Purpose.AUDIT)

    @cached_property
    def policies(self) -> PolicyHolder:
        """The live policy (reloaded when the file changes; a refused file is audited)."""
        return PolicyHolder(self.settings.policy_path, on_error=self._policy_refused,
                            masking_validator=MaskingConfig.model_validate)

    @property
    def policy(self) -> Policy:
        policy = self.policies.get()
        if policy.version != self._audited_policy:
            self._policy_loaded(policy)
        return policy

    def _policy_loaded(self, policy: Policy) -> None:
        """Audit a policy version once across every process (each one reloads on its own)."""
        previous = self._audited_policy
        self._audited_policy = policy.version
        try:
            first = self.redis.set(self.keys.policy_seen(policy.version), repr(time.time()),
                                   nx=True)
            if first:
                self.audit.append(Event.POLICY_RELOADED, "", "signoff", version=policy.version,
                                  previous=previous or "", path=str(self.settings.policy_path),
                                  rules=len(policy.rules))
        except redis.RedisError as exc:  # auditing must not take the policy away
            self._audited_policy = previous
            log.warning("could not audit policy version %s: %s", policy.version, exc)

    def _policy_refused(self, error: Exception) -> None:
        issues = getattr(error, "errors", [])
        digest = hashlib.sha256(str(error).encode()).hexdigest()
        try:
            if self.redis.set(self.keys.policy_seen("refused:" + digest[:16]), "1", nx=True,
                              ex=86400):
                self.audit.append(Event.POLICY_REFUSED, "", "signoff",
                                  path=str(self.settings.policy_path), errors=len(issues),
                                  error_sha256=digest, kept=self._audited_policy or "")
        except redis.RedisError as exc:
            log.warning("could not audit a refused policy: %s", exc)

    @cached_property
    def masker(self) -> Masker:
        """The masking engine, loaded once per process."""
        # Detectors declared in the policy travel with each rule's profile
        # (lifecycle.masking_profile), so a policy reload needs no new masker; one masker
        # (one spaCy model) per key and process, shared by every runtime in it.
        key = self.settings.pseudonym_key()
        masker = _MASKERS.get(key)
        if masker is None:
            masker = _MASKERS[key] = Masker(key=key)
        return masker

    def masking_config(self) -> MaskingConfig:
        """The policy's ``masking:`` section as the engine's config, rebuilt per policy version."""
        policy = self.policy
        if self._masking_config is None or self._masking_config[0] != policy.version:
            config = MaskingConfig.model_validate({
                "profiles": dict(policy.masking_profiles),
                "detectors": list(policy.custom_detectors)})
            self._masking_config = (policy.version, config)
        return self._masking_config[1]

    @cached_property
    def data_keyring(self) -> dict[str, bytes]:
        return self.settings.data_keyring()

    @cached_property
    def hmac_key(self) -> bytes:
        return self.settings.hmac_key()

    def enqueue(self, func: str, *args: Any, job_id: str | None = None,
                at: float | None = None, retries: int = 3) -> None:
        """Enqueue an rq job by dotted name (JSON arguments only), optionally at a time."""
        retry = Retry(max=retries, interval=[1, 5, 15][:retries]) if retries else None
        # The trace travels with the job (the worker opens the job's span under it).
        meta = tracing.carrier() or None
        if at is not None:
            when = datetime.fromtimestamp(at, tz=UTC)
            self.queue.enqueue_at(when, str(func), *args, job_id=job_id, retry=retry,
                                  meta=meta, result_ttl=RESULT_TTL)
        else:
            queue = self.urgent_queue if func in URGENT_JOBS else self.queue
            queue.enqueue(str(func), *args, job_id=job_id, retry=retry, meta=meta,
                          result_ttl=RESULT_TTL)

    def close(self) -> None:
        self.redis.close()
        self.redis_bytes.close()


def set_current(runtime: Runtime) -> None:
    """Install the process-wide runtime (workers do this before taking jobs)."""
    global _current
    _current = runtime


def current() -> Runtime:
    """The process-wide runtime; built from the environment on first use in a worker."""
    global _current
    if _current is None:
        _current = Runtime(load_settings().with_generated_secrets())
    return _current
