"""Prescription refill requests: the patient's side (``service``) and the
prescriber's queue in the console (``queue``)."""
