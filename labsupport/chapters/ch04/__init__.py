"""Chapter 4: IOThreads and the AioContext lock (2013–2017).

``scenarios`` (its programs), ``checks`` (its exercises' checkers) and ``widgets`` (its sliders),
where the chapter has them.
"""
