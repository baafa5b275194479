"""Patient portal features."""
