"""Render: a plan → clips on disk, through a provider, with a journal so nothing is paid twice.

Imports ``plan`` (it reads requests) and never ``assemble``.
"""
