"""A report drawn: the HTML verdict table and the matplotlib plots (growth fits, the capacity
contrast, per-relation heatmaps). matplotlib is imported only here, and only when asked.
"""
