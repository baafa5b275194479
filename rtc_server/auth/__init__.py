"""Accounts, sign-in, sessions, two-factor and permissions."""
