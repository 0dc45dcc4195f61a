"""Conventions every service keeps, checked over all of them at once."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import pytest
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR
from nameko.rpc import Rpc as NamekoRpc

from plumbing.rpc import Rpc
from scripts.processes import PROCESS_MODULES

SERVICE_MODULES = {
    name: module for name, module in PROCESS_MODULES.items() if name != "gateway"
}


def _service_class(target: str, name: str) -> type:
    module_path, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_path), class_name)
    assert cls.name == name
    return cls


def _rpc_methods(cls: type) -> list[tuple[str, Any, list[Any]]]:
    found = []
    for attr, member in inspect.getmembers(cls, inspect.isfunction):
        entrypoints = getattr(member, ENTRYPOINT_EXTENSIONS_ATTR, set())
        rpcs = [ep for ep in entrypoints if isinstance(ep, NamekoRpc)]
        if rpcs:
            found.append((attr, member, rpcs))
    return found


@pytest.mark.parametrize("name", sorted(SERVICE_MODULES))
def test_every_rpc_method_is_marked_authenticated_or_anonymous(name: str) -> None:
    """No RPC method can be reached without deciding whether it needs a caller."""
    cls = _service_class(SERVICE_MODULES[name], name)
    methods = _rpc_methods(cls)

    assert methods, f"{name} has no RPC methods"
    unmarked = [
        attr
        for attr, member, _ in methods
        if getattr(member, "__cpd_access__", None) not in {"authenticated", "anonymous"}
    ]
    assert unmarked == []


@pytest.mark.parametrize("name", sorted(SERVICE_MODULES))
def test_every_rpc_method_uses_the_platforms_rpc_entrypoint(name: str) -> None:
    """All RPCs of a service share plumbing's consumer (cheaper replies)."""
    cls = _service_class(SERVICE_MODULES[name], name)

    foreign = [
        attr
        for attr, _, rpcs in _rpc_methods(cls)
        if not all(isinstance(ep, Rpc) for ep in rpcs)
    ]
    assert foreign == []


@pytest.mark.parametrize("name", sorted(SERVICE_MODULES))
def test_every_service_answers_ping_without_a_caller(name: str) -> None:
    """/ready pings each service with no identity, so ping must be anonymous."""
    cls = _service_class(SERVICE_MODULES[name], name)

    assert getattr(cls.ping, "__cpd_access__", None) == "anonymous"
