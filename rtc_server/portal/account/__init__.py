"""Account settings."""
