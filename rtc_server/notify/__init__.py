"""Telling people things: live events, email, SMS."""
