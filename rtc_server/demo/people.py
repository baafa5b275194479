"""Who is in the demo clinic: fictional staff and patients, and what is on file
for each patient. Every name, address, phone number and identifier here is
invented; emails use reserved example domains."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from uuid import NAMESPACE_URL, uuid5

from rtc_server.records.names import normalize_name

_NAMESPACE = uuid5(NAMESPACE_URL, "https://rtc-server.example.org/demo-clinic")


def demo_id(*parts: object) -> str:
    """A stable id for a demo resource, so the bundle is the same for the same day."""
    return str(uuid5(_NAMESPACE, "/".join(str(p) for p in parts)))


CLINIC_TIMEZONE = "America/New_York"
CLINIC_NAME = "Riverside Community Clinic"
CLINIC_PHONE = "617-555-0100"
CLINIC_HOURS = "Mon-Fri 8 am to 5 pm"
MRN_SYSTEM = "https://riverside-clinic.example.org/mrn"


@dataclass(frozen=True)
class DemoPractitioner:
    key: str
    prefix: str | None
    given: str
    family: str
    suffix: str
    gender: str
    npi: str
    specialty: str
    email: str

    @property
    def fhir_id(self) -> str:
        return demo_id("Practitioner", self.key)


# NPIs carry a valid Luhn check digit (prefix 80840) but are invented.
PRACTITIONERS = [
    DemoPractitioner("marsh", "Dr.", "Elena", "Marsh", "MD", "female", "1234567893",
                     "Family Medicine", "elena.marsh@example.org"),
    DemoPractitioner("okafor", "Dr.", "Samuel", "Okafor", "MD", "male", "1245319599",
                     "Pediatrics", "samuel.okafor@example.org"),
    DemoPractitioner("lee", None, "Jordan", "Lee", "NP", "nonbinary", "1679576722",
                     "Family Nurse Practitioner", "jordan.lee@example.org"),
]


@dataclass(frozen=True)
class DemoStaffMember:
    """A clinic account in the demo. A provider is the Practitioner ``practitioner``
    (their name, credentials and schedule come from that record)."""

    username: str
    role: str  # provider | staff | admin
    name: str
    does: str  # what the banner says they are for
    practitioner: str | None = None


DEMO_STAFF = [
    DemoStaffMember("dr.marsh", "provider", "Dr. Elena Marsh, MD", "family medicine", practitioner="marsh"),
    DemoStaffMember("frontdesk", "staff", "Dana Brooks", "front desk: verification queue and help desk"),
    DemoStaffMember("clinicadmin", "admin", "Morgan Ellis", "practice manager: users and audit log"),
]


@dataclass(frozen=True)
class Lab:
    loinc: str
    display: str
    unit: str
    low: float | None
    high: float | None
    values: tuple[float, float]  # a year ago, last visit


@dataclass(frozen=True)
class Med:
    rxnorm: str
    display: str
    dosage: str
    source: str = "MedicationRequest"
    status: str = "active"
    refills: int = 3


@dataclass(frozen=True)
class FutureVisit:
    practitioner: str
    weekday_index: int  # 0 = first weekday after today
    hour: int
    minute: int
    kind: str  # in_person | video
    reason: str


@dataclass(frozen=True)
class DemoPatient:
    """A demo patient; the CLI creates a portal account linked to ``fhir_id``."""

    key: str
    given: str
    family: str
    birth_date: date
    gender: str
    zip: str | None
    email: str | None
    phone: str
    address_line: str
    city: str
    mrn: str
    practitioner: str
    conditions: list[tuple[str, str, int, str]] = field(default_factory=list)  # code, name, years ago, status
    labs: list[Lab] = field(default_factory=list)
    vitals: tuple[float, float, int, int, int] = (170.0, 70.0, 120, 80, 72)  # cm, kg, sys, dia, bpm
    meds: list[Med] = field(default_factory=list)
    allergies: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    # (code, name, category, criticality, reaction)
    vaccines: list[tuple[str, str, int]] = field(default_factory=list)  # cvx, name, days ago
    plan: tuple[str, str, list[tuple[str, str]]] = ("734163000", "Care plan", [])
    future: list[FutureVisit] = field(default_factory=list)

    @property
    def fhir_id(self) -> str:
        return demo_id("Patient", self.key)

    @property
    def username(self) -> str:
        """A portal username for a demo account: "maria.alvarez", "james.oconnor"."""
        given, family = normalize_name(self.given), normalize_name(self.family)
        return f"{given}.{family}".replace(" ", "")


_FLU = ("140", "Influenza, seasonal, injectable, preservative free", 120)
_COVID = ("208", "SARS-COV-2 (COVID-19) vaccine, mRNA, spike protein, LNP, preservative free", 300)

DEMO_PATIENTS: list[DemoPatient] = [
    DemoPatient(
        key="alvarez", given="María", family="Álvarez", birth_date=date(1979, 4, 18),
        gender="female", zip="02139", email="maria.alvarez@example.org", phone="617-555-0142",
        address_line="48 Elm Street, Apt 3", city="Cambridge", mrn="RCC-100231",
        practitioner="marsh",
        conditions=[("44054006", "Type 2 diabetes mellitus", 6, "active"),
                    ("59621000", "Essential hypertension", 4, "active")],
        labs=[Lab("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 4.0, 5.6, (8.4, 7.6)),
              Lab("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70, 99, (156, 138)),
              Lab("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.6, 1.2,
                  (0.8, 0.9)),
              Lab("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.5, 5.1,
                  (4.3, 4.1))],
        vitals=(162.0, 78.5, 138, 86, 76),
        meds=[Med("861007", "Metformin hydrochloride 500 MG Oral Tablet",
                  "1 tablet by mouth twice daily with meals"),
              Med("314076", "Lisinopril 10 MG Oral Tablet", "1 tablet by mouth once daily")],
        allergies=[("91936005", "Allergy to penicillin", "medication", "high", "Hives")],
        vaccines=[_FLU, _COVID],
        plan=("698360004", "Diabetes self management plan",
              [("160670007", "Diabetic diet"), ("229065009", "Exercise therapy"),
               ("408580007", "Glucose monitoring at home")]),
        future=[FutureVisit("marsh", 1, 10, 0, "in_person", "Diabetes check-up")],
    ),
    DemoPatient(
        key="oconnor", given="James", family="O'Connor", birth_date=date(1958, 11, 2),
        gender="male", zip="02144", email="james.oconnor@example.com", phone="617-555-0177",
        address_line="12 Highland Avenue", city="Somerville", mrn="RCC-100452",
        practitioner="marsh",
        conditions=[("55822004", "Hyperlipidemia", 9, "active"),
                    ("40930008", "Hypothyroidism", 3, "active")],
        labs=[Lab("18262-6", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay",
                  "mg/dL", None, 100, (171, 162)),
              Lab("2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma", "mg/dL", 40, None,
                  (38, 44)),
              Lab("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", "m[IU]/L", 0.4, 4.0,
                  (6.2, 0.21))],
        vitals=(178.0, 88.0, 128, 82, 68),
        meds=[Med("617310", "Atorvastatin 20 MG Oral Tablet", "1 tablet by mouth at bedtime"),
              Med("966222", "Levothyroxine Sodium 0.075 MG Oral Tablet",
                  "1 tablet by mouth every morning before breakfast", refills=0)],
        allergies=[("300913006", "Shellfish allergy", "food", "low", "Itching of mouth")],
        vaccines=[_FLU, ("33", "Pneumococcal polysaccharide vaccine, 23 valent", 700)],
        plan=("736285004", "Hyperlipidemia clinical management plan",
              [("183063000", "Low saturated fat diet"), ("229065009", "Exercise therapy")]),
        future=[FutureVisit("marsh", 2, 14, 0, "video", "Review cholesterol and thyroid results")],
    ),
    DemoPatient(
        key="nguyen", given="Leo", family="Nguyen", birth_date=date(2017, 5, 9),
        gender="male", zip="02155", email=None, phone="781-555-0119",
        address_line="230 Salem Street", city="Medford", mrn="RCC-100873",
        practitioner="okafor",
        conditions=[("195967001", "Asthma", 4, "active"),
                    ("61582004", "Allergic rhinitis", 2, "active")],
        labs=[Lab("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 11.5, 15.5, (12.4, 12.8)),
              Lab("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 4.5,
                  13.5, (7.9, 8.3))],
        vitals=(121.0, 23.5, 102, 64, 92),
        meds=[Med("745679", "200 ACTUAT Albuterol 0.09 MG/ACTUAT Metered Dose Inhaler",
                  "2 puffs every 4 hours as needed for wheezing"),
              Med("895994", "120 ACTUAT Fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler",
                  "1 puff twice daily", source="MedicationStatement", refills=0)],
        allergies=[("91935009", "Allergy to peanuts", "food", "high", "Swelling of lips")],
        vaccines=[_FLU, ("20", "DTaP", 1500), ("03", "MMR", 1400), ("21", "Varicella", 1400)],
        plan=("699728000", "Asthma self management",
              [("710081004", "Smoke-free environment"), ("708409001", "Home nebulizer therapy")]),
        future=[FutureVisit("okafor", 3, 9, 30, "in_person", "Asthma follow-up")],
    ),
    DemoPatient(
        key="raman", given="Priya", family="Raman", birth_date=date(1992, 9, 23),
        gender="female", zip=None, email="priya.raman@example.org", phone="857-555-0164",
        address_line="5 Harbor View Road", city="Boston", mrn="RCC-101096",
        practitioner="lee",
        conditions=[("87522002", "Iron deficiency anemia", 1, "active"),
                    ("37796009", "Migraine", 8, "active")],
        labs=[Lab("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 12.0, 15.5, (10.4, 11.1)),
              Lab("2276-4", "Ferritin [Mass/volume] in Serum or Plasma", "ng/mL", 15, 150, (6, 11)),
              Lab("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 4.5,
                  11.0, (6.1, 5.8))],
        vitals=(166.0, 58.0, 112, 70, 80),
        meds=[Med("310325", "Ferrous sulfate 325 MG Oral Tablet", "1 tablet by mouth daily"),
              Med("313114", "Sumatriptan 50 MG Oral Tablet",
                  "1 tablet at onset of migraine; may repeat after 2 hours",
                  source="MedicationStatement", refills=0)],
        allergies=[("300916003", "Latex allergy", "environment", "low", "Contact dermatitis")],
        vaccines=[_FLU, ("115", "Tdap", 900)],
        plan=("734163000", "Anemia care plan",
              [("226340007", "Iron rich diet"), ("395170001", "Medication monitoring")]),
        future=[FutureVisit("lee", 0, 15, 30, "video", "Follow-up on iron levels")],
    ),
    DemoPatient(
        key="kowalski", given="Walter", family="Kowalski", birth_date=date(1946, 2, 14),
        gender="male", zip="02140", email=None, phone="617-555-0108",
        address_line="77 Rindge Avenue", city="Cambridge", mrn="RCC-100019",
        practitioner="marsh",
        conditions=[("13645005", "Chronic obstructive lung disease", 11, "active"),
                    ("49436004", "Atrial fibrillation", 5, "active")],
        labs=[Lab("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.7, 1.3,
                  (1.2, 1.5)),
              Lab("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.5, 5.1,
                  (4.8, 5.4)),
              Lab("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 13.5, 17.5, (14.1, 13.9))],
        vitals=(175.0, 71.0, 134, 78, 84),
        meds=[Med("1364445", "Apixaban 5 MG Oral Tablet", "1 tablet by mouth twice daily"),
              Med("485210", "Tiotropium 0.018 MG Inhalation Capsule",
                  "Inhale contents of 1 capsule once daily")],
        allergies=[("294468006", "Allergy to sulfonamide", "medication", "low", "Rash")],
        vaccines=[_FLU, ("133", "Pneumococcal conjugate PCV 13", 1000), _COVID],
        plan=("412776001", "COPD self-management plan",
              [("304510005", "Inhaler technique education"), ("229065009", "Exercise therapy")]),
        future=[FutureVisit("marsh", 5, 11, 0, "in_person", "COPD review"),
                FutureVisit("lee", 7, 13, 30, "video", "Medication check")],
    ),
]
