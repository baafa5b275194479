"""FHIR R4: bundles of records on file into ``rtc_server.records``, and a
patient's record back out as a bundle that re-imports into the same rows.

Public API: ``import_bundle``, ``load_bundle_file``, ``ImportSummary``,
``BundleError``, ``export_patient``.
"""

from rtc_server.fhir.bundle import BundleError, load_bundle_file
from rtc_server.fhir.export import export_patient
from rtc_server.fhir.importer import ImportSummary, import_bundle

__all__ = ["BundleError", "ImportSummary", "export_patient", "import_bundle", "load_bundle_file"]
