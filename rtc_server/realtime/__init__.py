"""The shared WebSocket layer every real-time feature uses (events, chat,
signaling, rooms): admission before ``accept``, one reader loop per
connection and a writer only under backpressure, a per-instance hub that
encodes each event once, one session sweeper per instance, and the error
mapping of ``rtc_server.ws_errors``. Frames and close codes: docs/protocol.md.

Nothing here knows a feature's rules; features declare an ``Endpoint``.
"""

from __future__ import annotations

from rtc_server.realtime.admission import SocketLimits
from rtc_server.realtime.connection import Connection
from rtc_server.realtime.endpoint import READY, Endpoint
from rtc_server.realtime.hub import Hub
from rtc_server.realtime.layer import RealtimeLayer
from rtc_server.realtime.ratelimit import TokenBucket
from rtc_server.realtime.sweeper import Sweeper

__all__ = ["READY", "Connection", "Endpoint", "Hub", "RealtimeLayer", "SocketLimits", "Sweeper",
           "TokenBucket"]
