"""Durable state: SQLite (index, settings, journal) and Maildir (message content).

Nothing in this package imports from the rest of bimmaild.
"""
