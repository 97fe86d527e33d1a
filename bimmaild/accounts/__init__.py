"""Accounts: model and validation, management service, secret backends."""
