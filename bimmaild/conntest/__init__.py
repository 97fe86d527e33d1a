"""The connection test (R-A3): check IMAP and SMTP step by step and say precisely what to fix."""
