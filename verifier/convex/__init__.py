"""Convex certificates (docs/theory.md section 6): P1 codebook separability, P2 re-embedding through
a frozen network, P3 the associative baseline, and the minimal dimension and width searches.
Every answer is a checked primal/dual sandwich; a solver status alone is never a verdict."""
