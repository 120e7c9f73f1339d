"""Chapter 6: Fine-grained locks and thread-safety analysis (2022–2023).

``scenarios`` (its programs), ``checks`` (its exercises' checkers) and ``widgets`` (its sliders),
where the chapter has them.
"""
