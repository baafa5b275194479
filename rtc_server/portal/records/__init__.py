"""The Medical Records tab: the record on file as the patient sees it, its FHIR
export, and who may read whose chart."""
