"""``python -m rtc_server`` runs the command-line interface."""

from rtc_server.cli import main

raise SystemExit(main())
