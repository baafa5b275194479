"""Virtual visits: the visit and its participants, the provider's waiting room,
admission, TURN credentials, the device check and the waiting-room displays;
guests invited by link (``guests.py``) and the in-visit chat on the messaging
machinery (``visitchat.py``).

Layers as everywhere: ``routes.py`` (HTTP) → ``service.py`` (rules, audit,
``announce``) → ``models.py``; ``lobby.py`` holds the waiting room, admission
and the call room as state machines without I/O. The WebRTC signaling socket
that drives the call room is in ``rtc_server.signaling``. Frames and API:
docs/visits.md.
"""
