"""Claims on the user's own model files (docs/model-files.md).

:mod:`~verifier.models.registry` holds :data:`~verifier.models.registry.MODEL_ADAPTERS` and
``register_adapter``, with the built-in adapters ``one_layer`` (:mod:`~verifier.models.one_layer`:
a safetensors or weights-only state dict file of the section 2 model) and ``hf``
(:mod:`~verifier.models.hf`: a Hugging Face causal-LM folder, extra ``[hf]``);
:mod:`~verifier.models.paths` resolves and confines model paths and digests them (torch-free,
so this package's import is too).
"""
