"""IMAP: the adapter over aioimaplib (``connection``), and later the parsers and sync logic built on it."""
