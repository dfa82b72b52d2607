"""OpenTelemetry traces of one request: the agent's XADD, intake, prepare, every card post,
every click, finalize and the reply, each span carrying the request id.

Off unless ``SIGNOFF_OTLP_ENDPOINT`` is set: then each process exports its spans over
OTLP/HTTP (:func:`configure`). When off, the API's no-op tracer makes every call here nearly
free and nothing is written to Redis.

Context travels the way the request does:

- agent -> intake: a ``traceparent`` field next to ``body`` in the stream entry;
- between jobs: rq job meta (``traceparent``), written by :meth:`Runtime.enqueue
  <signoff.runtime.Runtime.enqueue>` and read by the worker around each job;
- to card operations: the operation in the outbox carries it;
- to clicks (another process, much later): the request's context is kept in Redis
  (``trace:{id}``, only while tracing is on) and a vote's span joins it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

if TYPE_CHECKING:
    from signoff.context import StoreContext
    from signoff.settings import Settings

REQUEST_ID = "signoff.request_id"
TRACEPARENT = "traceparent"
F = TypeVar("F", bound=Callable[..., Any])
_tracer: trace.Tracer = trace.NoOpTracer()
_enabled = False
_configured = False


def install(provider: trace.TracerProvider | None) -> None:
    """Record Signoff's spans with ``provider`` (None: stop recording). :func:`configure`
    does this for the OTLP exporter; tests give an in-memory one."""
    global _tracer, _enabled
    if provider is None:
        _tracer, _enabled = trace.NoOpTracer(), False
    else:
        _tracer, _enabled = provider.get_tracer("signoff"), True


def configure(settings: Settings, service: str) -> bool:
    """Export this process's spans over OTLP/HTTP when ``settings.otlp_endpoint`` is set.

    Returns:
        True when tracing was turned on.
    """
    global _configured
    if not settings.otlp_endpoint or _configured:
        return _configured
    # Only when export is configured: the OTLP exporter is slow to import, unused otherwise.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"signoff-{service}"}))
    endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    install(provider)
    _configured = True
    return True


def enabled() -> bool:
    """Whether Signoff's spans are recorded in this process."""
    return _enabled


def carrier() -> dict[str, str]:
    """The current context as headers (``traceparent``); empty when nothing is recorded."""
    if not trace.get_current_span().get_span_context().is_valid:
        return {}
    out: dict[str, str] = {}
    propagate.inject(out)
    return out


def traceparent() -> str | None:
    return carrier().get(TRACEPARENT)


def _context(parent: Mapping[str, str] | str | None) -> otel_context.Context | None:
    if not parent:
        return None
    headers = {TRACEPARENT: parent} if isinstance(parent, str) else dict(parent)
    return propagate.extract(headers)


@contextmanager
def span(name: str, request_id: str | None = None,
         parent: Mapping[str, str] | str | None = None,
         **attributes: Any) -> Iterator[trace.Span]:
    """A span (child of ``parent`` when given, else of the current one) with the request id."""
    attrs = {k: v for k, v in attributes.items() if v is not None}
    if request_id is not None:
        attrs[REQUEST_ID] = request_id
    with _tracer.start_as_current_span(name, context=_context(parent), attributes=attrs) as s:
        yield s


def remember(rt: StoreContext, request_id: str, parent: str | None = None) -> None:
    """Keep the request's trace context (``parent``, or the current one) for later spans in
    other processes (clicks). Nothing is written when tracing is off."""
    if not enabled():
        return
    value = parent or traceparent()
    if value:
        rt.redis.set(rt.keys.trace(request_id), value, ex=rt.settings.record_ttl)


def recall(rt: StoreContext, request_id: str) -> str | None:
    """The request's kept trace context, if tracing is on and one was kept."""
    if not enabled():
        return None
    value = rt.redis.get(rt.keys.trace(request_id))
    return str(value) if value else None


def traced(name: str) -> Callable[[F], F]:
    """Decorate ``f(rt, request_id, ...)`` with a span joined to the request's trace (the
    current span, or the context kept by :func:`remember`)."""

    def wrap(func: F) -> F:
        @functools.wraps(func)
        def inner(rt: Any, request_id: Any, *args: Any, **kwargs: Any) -> Any:
            if not enabled():
                return func(rt, request_id, *args, **kwargs)
            current = trace.get_current_span().get_span_context().is_valid
            parent = None if current else recall(rt, str(request_id))
            with span(name, str(request_id), parent=parent):
                return func(rt, request_id, *args, **kwargs)

        return inner  # type: ignore[return-value]

    return wrap
