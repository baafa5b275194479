"""Registration against the record on file."""
