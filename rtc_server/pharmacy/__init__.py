"""The clinic's pharmacy directory and the sender that passes approved
prescriptions on to a pharmacy (``sender``: a mock of the pharmacy network)."""
