"""Providers render a planned request into a clip: Kling for real, ``preview`` for free."""
