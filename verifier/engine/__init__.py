"""The engine behind the three doors: the runner (sweep points, replicates, limits, judging),
minimal-size searches, growth fits, reports, executors (local pool, Ray) and verdict reuse.

It reaches the claim kinds only through :data:`verifier.checks.REGISTRY`.
"""
