"""Which implementation a session uses for each pluggable engine.

A *kind* is an interface; an *implementation* is a class registered under a name.
A :class:`~ezprotocols.Session` picks one per kind (``Session(..., ot="iknp",
triples="ot", linear="ot", compare="ot")``; ``None`` means :data:`DEFAULTS`) and
builds it on first use as ``s.ot``, ``s.triples`` (through the pool manager),
``s.linear``, ``s.compare``.  Every class takes the session as its only
constructor argument and runs no protocol until a method is called.

======== =============================================== ============================== =========
kind     interface                                       implementations                default
======== =============================================== ============================== =========
ot       :class:`ezprotocols.ot.source.CotSource`         ``iknp``, ``iknp-modp``,       ``iknp``
                                                         ``ferret``
triples  :class:`ezprotocols.arith.triples.TripleSource`  ``he``, ``ot``, ``dealer``     ``he``
linear   :class:`ezprotocols.arith.products.Products`     ``he``, ``ot``                 ``he``
compare  :class:`ezprotocols.protocols.sign.CompareEngine` ``gc``, ``ot``                 ``ot``
======== =============================================== ============================== =========

Targets are ``"module:attr"`` strings resolved on first use, so importing this
module imports no protocol code.  Out-of-tree implementations are added with
:func:`register`:

>>> from ezprotocols import backends
>>> backends.DEFAULTS["ot"]
'iknp'
>>> sorted(backends.names("triples"))
['dealer', 'he', 'ot']
>>> backends.resolve("compare", "gc").__name__
'GcCompare'
>>> backends.check("ot", "nope")
Traceback (most recent call last):
...
ValueError: ot must be one of ('iknp', 'iknp-modp', 'ferret'), not 'nope'
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["KINDS", "DEFAULTS", "register", "resolve", "names", "check", "create"]

KINDS: dict[str, dict[str, Any]] = {
    "ot": {"iknp": "ezprotocols.ot.engine:IknpSource",
           "iknp-modp": "ezprotocols.ot.engine:IknpModpSource",
           "ferret": "ezprotocols.ot.ferret:Ferret"},
    "triples": {"ot": "ezprotocols.arith.ot_source:OtTriples",
                "he": "ezprotocols.arith.he:HeTriples",
                "dealer": "ezprotocols.arith.dealer:DealerSource"},
    "linear": {"ot": "ezprotocols.arith.products:OtProducts",
               "he": "ezprotocols.arith.he:HeProducts"},
    "compare": {"gc": "ezprotocols.protocols.sign:GcCompare",
                "ot": "ezprotocols.protocols.otcmp:OtCompare"},
}

_RESOLVED: dict[tuple, Any] = {}

#: The cheapest secure implementation of each kind.
DEFAULTS: dict[str, str] = {"ot": "iknp", "triples": "he", "linear": "he", "compare": "ot"}


def register(kind: str, name: str, target) -> None:
    """Make ``name`` an implementation of ``kind``: ``target`` is a class (or any
    callable ``target(session)``) or a ``"module:attr"`` string imported on first use.
    Re-registering a name replaces it."""
    if kind not in KINDS:
        raise ValueError(f"unknown engine kind {kind!r}; kinds: {tuple(KINDS)}")
    if not isinstance(name, str) or not name:
        raise ValueError("the implementation name must be a non-empty string")
    if isinstance(target, str) and target.count(":") != 1:
        raise ValueError(f"target {target!r} must be 'module:attr'")
    KINDS[kind][name] = target
    _RESOLVED.pop((kind, name), None)


def names(kind: str) -> tuple:
    """The registered implementation names of ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"unknown engine kind {kind!r}; kinds: {tuple(KINDS)}")
    return tuple(KINDS[kind])


def check(kind: str, name: str | None) -> str:
    """``name`` (``None``: the default) if it is registered for ``kind``, else ValueError."""
    if name is None:
        return DEFAULTS[kind]
    options = names(kind)
    if name not in options:
        raise ValueError(f"{kind} must be one of {options}, not {name!r}")
    return name


def resolve(kind: str, name: str):
    """The class (or factory) registered as ``name`` for ``kind``, imported if needed."""
    key = (kind, check(kind, name))
    if key not in _RESOLVED:
        target = KINDS[kind][key[1]]
        if isinstance(target, str):
            mod, attr = target.split(":")
            target = getattr(importlib.import_module(mod), attr)
        _RESOLVED[key] = target
    return _RESOLVED[key]


def create(kind: str, name: str, session):
    """A new instance of implementation ``name`` of ``kind`` for ``session``."""
    return resolve(kind, name)(session)
