"""The facts a model must recall: seeded bijections (single hop) and relation chains (multi-hop).

Every draw comes from the instance's seed (:mod:`verifier.seeds`), so one spec always holds the
same facts. Nothing here imports torch or a solver.
"""
