"""Synchronisation: the server's folders into the local store (R-C1, R-C2, R-C7).

``planner`` decides (sans-IO), ``folder_sync`` carries out one folder over an
IMAP connection, ``account_sync`` one account, ``service`` owns the running
fetches.  Nothing here imports ``bimmaild.control``.
"""
