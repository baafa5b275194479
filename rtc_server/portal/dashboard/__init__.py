"""The Dashboard tab: one request gathers what the patient should see first."""
