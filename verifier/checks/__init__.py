"""One check per claim kind: ``(context) -> Measurement``, registered by its ``check:`` tag.

A kind's module defines a :class:`~verifier.checks.base.CheckKind` and calls
:func:`~verifier.checks.base.register`. Built-in kinds are listed in
:data:`~verifier.checks.base.BUILTIN_KINDS` and imported the first time ``REGISTRY[tag]`` is
looked up, so importing this package is cheap.
"""

from verifier.checks.base import REGISTRY, CheckContext, CheckKind, Measurement, register

__all__ = ["REGISTRY", "CheckContext", "CheckKind", "Measurement", "register"]
