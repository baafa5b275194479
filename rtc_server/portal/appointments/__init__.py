"""The Appointments tab: published availability, open times, booking, rescheduling,
cancelling and reminders (see docs/appointments.md)."""
