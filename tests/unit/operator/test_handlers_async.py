"""Every kopf handler the operator registers is a coroutine function: kopf runs a sync handler
in its thread pool, a thread hop and a shielded task per call, and index handlers run on every
watch event (most of the operator's CPU at 1000 Endpoints when they were sync)."""

from __future__ import annotations

import inspect

import kopf

import sageport.operator.handlers  # noqa: F401  (registers the handlers)


def test_every_registered_handler_is_async() -> None:
    registry = kopf.get_default_registry()
    handlers = [
        handler
        for kind in (registry._activities, registry._indexing, registry._watching, registry._changing)
        for handler in kind.get_all_handlers()
        if handler.fn.__module__.startswith("sageport.")  # not kopf's own (its login is sync)
    ]
    assert len(handlers) > 20  # the operator's handlers were found at all
    sync = [handler.id for handler in handlers if not inspect.iscoroutinefunction(handler.fn)]
    assert sync == []
