"""One check per claim kind: ``(context) -> Measurement``, registered by its ``check:`` tag.

Importing this package registers every built-in kind. A kind's module defines a
:class:`~verifier.checks.base.CheckKind` and calls :func:`~verifier.checks.base.register`.
"""

from verifier.checks import bound as bound
from verifier.checks import construction as construction
from verifier.checks import feasibility as feasibility
from verifier.checks import multihop as multihop
from verifier.checks import training as training
from verifier.checks import transfer as transfer
from verifier.checks.base import REGISTRY, CheckContext, CheckKind, Measurement, register

__all__ = ["REGISTRY", "CheckContext", "CheckKind", "Measurement", "register"]
