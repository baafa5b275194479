"""rtc_server: a self-hostable telehealth and patient-portal server."""

__version__ = "0.1.0"
