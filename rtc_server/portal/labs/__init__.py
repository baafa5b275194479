"""Lab results: release rules (released at once, or held for a clinician's review),
the patient's view of released results, and release from the console."""
