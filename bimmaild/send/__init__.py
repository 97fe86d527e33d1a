"""Sending: recipient parsing, composition, SMTP submission, signatures, outbox."""
