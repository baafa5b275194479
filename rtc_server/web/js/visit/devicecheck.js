// The connection test: this browser sends its camera and microphone to the
// server, which sends them straight back (aiortc), so the person sees the round
// trip and the page measures round-trip time, loss and bitrate. The test is
// short and the server runs only a few at once; when it is busy the page says to
// try again shortly. The result is kept so the clinic sees who is ready.

import { api, ApiError } from "../api.js";
import { summarize } from "./quality.js";

const MEASURE_MS = 6000;

function gathered(pc, timeoutMs = 3000) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", done);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", done);
    window.setTimeout(resolve, timeoutMs); // whatever was gathered by then
  });
}

/** Plain words for a measured round trip. */
export function verdict(s) {
  if (!s || s.rttMs === null) {
    return { outcome: "failed", text: "We could not connect to the clinic's server. Check your internet connection and try again." };
  }
  if (s.rttMs < 250 && s.lossPercent < 2 && (s.kbps === null || s.kbps >= 300)) {
    return { outcome: "good", text: "Your connection is good enough for video." };
  }
  if (s.rttMs < 600 && s.lossPercent < 8) {
    return { outcome: "fair", text: "Your connection should work for video; the picture may be less sharp." };
  }
  return { outcome: "poor", text: "Your connection is weak for video. Moving closer to your Wi-Fi router can help; the visit may fall back to sound only." };
}

/**
 * Run the test with `media`'s tracks, showing the returned video in `videoEl`.
 * Resolves with {outcome, text, rttMs, lossPercent, kbps}; rejects with ApiError
 * (status 429 when the server is busy).
 */
export async function runConnectionTest(media, videoEl, onProgress = () => {}) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  let session = null;
  try {
    for (const track of media.stream.getTracks()) pc.addTrack(track, media.stream);
    pc.addEventListener("track", ({ streams, track }) => {
      videoEl.srcObject = streams[0] || new MediaStream([track]);
    });
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    onProgress("Connecting to the clinic's server…");
    session = await api("/visits/device-check/echo", { method: "POST", body: { sdp: pc.localDescription.sdp } });
    await pc.setRemoteDescription({ type: "answer", sdp: session.sdp });
    onProgress("Measuring your connection…");
    const first = summarize(await pc.getStats(), null);
    await new Promise((r) => window.setTimeout(r, MEASURE_MS));
    const summary = summarize(await pc.getStats(), first);
    const result = { ...verdict(summary), rttMs: summary.rttMs, lossPercent: summary.lossPercent, kbps: summary.kbps };
    await api("/visits/device-check", {
      method: "POST",
      body: {
        outcome: result.outcome,
        rtt_ms: result.rttMs,
        loss_percent: Math.round(result.lossPercent * 10) / 10,
        bitrate_kbps: result.kbps,
      },
    }).catch(() => {});
    return result;
  } finally {
    pc.close();
    if (session) api(`/visits/device-check/echo/${session.id}`, { method: "DELETE" }).catch(() => {});
  }
}

export { ApiError };
