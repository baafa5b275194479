"""The clinical records on file (patients, results, medications, plans...) and
the clinic's scheduling tables. Imported from FHIR R4 by ``rtc_server.fhir``."""
