"""An example verifier plugin (docs/plugins.md).

- ``theorem``: PADDED, the compact construction's shapes with one spare residual
  coordinate (imports no torch: ``GET /v1/theorems`` loads it in the API process);
- ``construction``: ``padded_compact``, which builds it through the real weights;
- ``measure``: ``subject_norm_spread``, a mechanism measure of trained models;
- ``check``: the ``ablation`` claim kind, recall with chosen weights zeroed.
"""
