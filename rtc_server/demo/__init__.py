"""The demo clinic: our own fictional staff and patients as a FHIR R4 bundle."""

from rtc_server.demo.clinic import build_demo_bundle
from rtc_server.demo.people import CLINIC_TIMEZONE, DEMO_PATIENTS, DemoPatient

__all__ = ["CLINIC_TIMEZONE", "DEMO_PATIENTS", "DemoPatient", "build_demo_bundle"]
