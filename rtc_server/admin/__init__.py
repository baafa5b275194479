"""Administration: audit search."""
