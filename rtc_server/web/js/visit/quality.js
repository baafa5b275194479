// Connection quality from WebRTC statistics (getStats), in plain words.
// Read every couple of seconds per connection: round-trip time of the pair in
// use, packets lost and frames decoded since the last reading, whether media is
// relayed through TURN. Nothing is sent anywhere.

/** Compare two getStats() readings of one connection. */
export function summarize(report, previous) {
  const now = { framesDecoded: 0, packetsReceived: 0, packetsLost: 0, bytesReceived: 0, at: 0 };
  let pair = null;
  let transport = null;
  const byId = new Map();
  report.forEach((s) => byId.set(s.id, s));
  report.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId) transport = s;
    if (s.type === "inbound-rtp") {
      now.packetsReceived += s.packetsReceived || 0;
      now.packetsLost += Math.max(0, s.packetsLost || 0);
      now.bytesReceived += s.bytesReceived || 0;
      if (s.kind === "video") now.framesDecoded += s.framesDecoded || 0;
      now.at = Math.max(now.at, s.timestamp || 0);
    }
  });
  if (transport) pair = byId.get(transport.selectedCandidatePairId) || null;
  if (!pair) {
    report.forEach((s) => {
      if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s;
    });
  }
  const local = pair ? byId.get(pair.localCandidateId) : null;
  const remote = pair ? byId.get(pair.remoteCandidateId) : null;
  const seconds = previous && now.at > previous.at ? (now.at - previous.at) / 1000 : 0;
  const received = previous ? now.packetsReceived - previous.packetsReceived : 0;
  const lost = previous ? now.packetsLost - previous.packetsLost : 0;
  return {
    ...now,
    rttMs: pair && typeof pair.currentRoundTripTime === "number" ? Math.round(pair.currentRoundTripTime * 1000) : null,
    lossPercent: received + lost > 0 ? (100 * lost) / (received + lost) : 0,
    fps: seconds ? (now.framesDecoded - previous.framesDecoded) / seconds : null,
    kbps: seconds ? Math.round(((now.bytesReceived - previous.bytesReceived) * 8) / seconds / 1000) : null,
    relayed: Boolean((local && local.candidateType === "relay") || (remote && remote.candidateType === "relay")),
  };
}

/** "good" | "fair" | "poor", and a sentence for people. */
export function grade(s) {
  if (!s || s.rttMs === null) return { level: "unknown", text: "Measuring the connection…" };
  if (s.rttMs < 300 && s.lossPercent < 2 && (s.fps === null || s.fps >= 10)) {
    return { level: "good", text: "Connection is good." };
  }
  if (s.rttMs < 700 && s.lossPercent < 8) {
    return { level: "fair", text: "Connection is fair: video may be less sharp." };
  }
  return { level: "poor", text: "Connection is poor: video may freeze. Moving closer to Wi-Fi can help." };
}

/** Poll `link.pc.getStats()` every `ms`; `onReading(summary)` each time. Returns a stop function. */
export function watchQuality(link, onReading, ms = 2000) {
  let previous = null;
  let stopped = false;
  const tick = async () => {
    if (stopped || link.closed) return;
    try {
      const summary = summarize(await link.pc.getStats(), previous);
      previous = summary;
      onReading(summary);
    } catch {
      // The connection closed meanwhile.
    }
  };
  const timer = window.setInterval(tick, ms);
  tick();
  return () => {
    stopped = true;
    window.clearInterval(timer);
  };
}
