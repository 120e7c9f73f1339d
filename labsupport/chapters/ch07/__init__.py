"""Chapter 7: Removing the AioContext lock and the multi-queue block layer (QEMU 9.0).

``scenarios`` (its programs), ``checks`` (its exercises' checkers) and ``widgets`` (its sliders),
where the chapter has them.
"""
