"""Chapter 8: Retrospective: every era on one workload.

``scenarios`` (its programs), ``checks`` (its exercises' checkers) and ``widgets`` (its sliders),
where the chapter has them.
"""
