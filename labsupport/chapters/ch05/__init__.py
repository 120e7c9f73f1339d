"""Chapter 5: Handlers take the lock (2017–2023).

``scenarios`` (its programs), ``checks`` (its exercises' checkers) and ``widgets`` (its sliders),
where the chapter has them.
"""
