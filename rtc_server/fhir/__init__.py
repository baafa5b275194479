"""FHIR R4 import: bundles of records on file into ``rtc_server.records``.

Public API: ``import_bundle``, ``load_bundle_file``, ``ImportSummary``, ``BundleError``.
"""

from rtc_server.fhir.bundle import BundleError, load_bundle_file
from rtc_server.fhir.importer import ImportSummary, import_bundle

__all__ = ["BundleError", "ImportSummary", "import_bundle", "load_bundle_file"]
