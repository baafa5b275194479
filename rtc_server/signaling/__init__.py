"""WebRTC signaling for visits: validated frames (``frames``), the relay that
forwards SDP and ICE only between admitted participants of one room, on
whichever instance each is connected (``relay``), and the ``/ws/v1/visit``
socket on the shared real-time layer (``ws``). The server never reads media
and never parses SDP beyond its limits. Frames: docs/visits.md.
"""
