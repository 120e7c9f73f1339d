"""The chapters: each one's scenarios, exercise checkers and widgets, in ``chNN/``.

A chapter is imported only when a notebook or ``check()`` asks for it, so a broken chapter
cannot break another. ``CHAPTERS`` is the list, in the order the course reads.

Layer 9 (chapters): imports any layer below.
"""

#: Every chapter package, in course order: ``labsupport.chapters.<name>``.
CHAPTERS = ("ch00", "ch01", "ch02", "ch03", "ch04", "ch05", "ch06", "ch07", "ch08", "ch09")
