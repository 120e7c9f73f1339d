"""Chapter 9: Real threads.

``scenarios`` (its programs and measurements) and ``checks`` (its exercises' checkers).
"""
