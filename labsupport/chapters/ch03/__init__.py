"""Chapter 3: The dataplane (2012-2013).

``scenarios`` (its programs), ``checks`` (its exercises' checkers) and ``widgets`` (its sliders),
where the chapter has them.
"""
