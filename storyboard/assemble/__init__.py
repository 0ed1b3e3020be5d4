"""Assemble: rendered clips → finished cuts (the timeline, the video, the side files, the review page)."""
