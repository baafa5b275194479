"""The provider and staff side of the portal (the clinician workspace)."""
