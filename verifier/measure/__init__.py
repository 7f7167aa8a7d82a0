"""Measurements on a model: exact recall over every fact, and the mechanism measures.

Float64 through the real forward pass of :class:`verifier.model.OneLayerTransformer`; a
measure never samples when every fact fits.
"""
