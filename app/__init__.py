"""Account management service."""
