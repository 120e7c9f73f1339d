"""Chapter 1: One thread for everything (before 2009).

``scenarios`` (its programs), ``checks`` (its exercises' checkers) and ``widgets`` (its sliders),
where the chapter has them.
"""
