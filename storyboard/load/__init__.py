"""Load: storyboard and campaign files → validated, positioned models (every problem at file:line:col).

The lowest stage of the pipeline: it imports nothing from ``plan``, ``render`` or ``assemble``.
"""
