"""Explicit constructions (docs/theory.md sections 3 and 5): each writes the weights of
:class:`verifier.model.OneLayerTransformer` and returns it with its residual layout."""
