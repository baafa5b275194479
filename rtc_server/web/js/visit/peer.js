// One WebRTC connection to one other participant, with the "perfect negotiation"
// pattern (MDN, "Perfect negotiation" in the WebRTC API guide):
// either side may (re)negotiate at any time — a screen share added, an ICE restart —
// and when both offer at once the polite side yields. Who is polite is decided from
// the two peer ids, the same way on both sides (the lower id is polite).
//
// Both sides want to negotiate the moment they meet (their camera tracks are added
// at once). The impolite side's offer goes first and the polite side waits a moment
// for it before offering itself: a glare on the very first offer is legal, but
// Chromium that rolls back its own offer while the TURN allocation for it is under
// way may never gather again (seen in about one call in six on a loaded machine),
// and the call would sit at "new" for good.
//
// Candidates are trickled. When the connection fails, or stays disconnected for a
// few seconds (a network blip), this side restarts ICE; a side left waiting for an
// answer that never came (it was lost while its socket was away) rolls back and
// offers again. The server relays; it never sees media.

const DISCONNECTED_GRACE_MS = 2500;
const STUCK_OFFER_MS = 5000;
const FIRST_OFFER_WAIT_MS = 2000;
const STUCK_NEW_MS = 10000;

export class PeerLink {
  /**
   * @param {object} o
   * @param {string} o.me   this page's peer id
   * @param {string} o.peer the other side's peer id
   * @param {RTCConfiguration} o.config ICE servers and transport policy from the server
   * @param {(frame: object) => boolean} o.signal sends a frame on the visit socket
   * @param {LocalMedia} o.media this page's camera and microphone
   */
  constructor({ me, peer, name, role, config, signal, media, onRemote, onState }) {
    this.me = me;
    this.peer = peer;
    this.name = name || "";
    this.role = role || "";
    this.polite = me < peer;
    this.signal = signal;
    this.onRemote = onRemote || (() => {});
    this.onState = onState || (() => {});
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.settingRemoteAnswer = false;
    this.closed = false;
    this.restarts = 0;
    this.offerSince = 0;
    this.createdAt = Date.now();
    this.waitedForOffer = false;
    this.streams = new Map(); // stream id -> MediaStream (camera, screen)
    this.pc = new RTCPeerConnection(config);
    this.media = media;
    this.senders = {};
    // addTrack (not addTransceiver): the other side's offer then reuses these
    // transceivers instead of adding sections of its own.
    for (const kind of ["audio", "video"]) {
      const track = media.track(kind);
      if (track) this.senders[kind] = this.pc.addTrack(track, media.stream);
    }
    this.screenSender = null;
    this.pc.addEventListener("negotiationneeded", () => this.negotiate());
    this.pc.addEventListener("icecandidate", ({ candidate }) => {
      this.signal({ type: "ice", to: this.peer, candidate: candidate ? candidate.toJSON() : null });
    });
    this.pc.addEventListener("track", ({ track, streams }) => {
      const stream = streams[0] || new MediaStream([track]);
      this.streams.set(stream.id, stream);
      this.onRemote(this, stream, track);
    });
    this.pc.addEventListener("connectionstatechange", () => this.watch());
    this.pc.addEventListener("iceconnectionstatechange", () => this.watch());
    this.pc.addEventListener("signalingstatechange", () => {
      this.offerSince = this.pc.signalingState === "have-local-offer" ? Date.now() : 0;
    });
    this.watchdog = window.setInterval(() => this.unstick(), 1000);
  }

  get state() {
    return this.pc.connectionState;
  }

  async negotiate() {
    if (this.closed) return;
    if (this.polite && !this.waitedForOffer && !this.pc.remoteDescription) {
      // The first offer is the other side's (see the top of this file); ours only if none came.
      window.clearTimeout(this.firstOfferTimer);
      this.firstOfferTimer = window.setTimeout(() => {
        this.waitedForOffer = true;
        if (!this.pc.remoteDescription && this.pc.signalingState === "stable") this.negotiate();
      }, FIRST_OFFER_WAIT_MS);
      return;
    }
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      this.signal({ type: this.pc.localDescription.type, to: this.peer, sdp: this.pc.localDescription.sdp });
    } catch (error) {
      console.warn("negotiation failed", error.name);
    } finally {
      this.makingOffer = false;
    }
  }

  /** An offer or answer from the other side. */
  async description({ type, sdp }) {
    if (this.closed) return;
    const pc = this.pc;
    const readyForOffer = !this.makingOffer && (pc.signalingState === "stable" || this.settingRemoteAnswer);
    const collision = type === "offer" && !readyForOffer;
    this.ignoreOffer = !this.polite && collision;
    if (this.ignoreOffer) return;
    try {
      this.settingRemoteAnswer = type === "answer";
      await pc.setRemoteDescription({ type, sdp });
      this.settingRemoteAnswer = false;
      if (type === "offer") {
        await pc.setLocalDescription();
        this.signal({ type: pc.localDescription.type, to: this.peer, sdp: pc.localDescription.sdp });
      }
    } catch (error) {
      this.settingRemoteAnswer = false;
      console.warn("could not apply the other side's description", error.name);
    }
  }

  /** A trickled candidate (null: the other side has no more). */
  async candidate(candidate) {
    if (this.closed) return;
    try {
      await this.pc.addIceCandidate(candidate || undefined);
    } catch (error) {
      if (!this.ignoreOffer) console.warn("could not add a candidate", error.name);
    }
  }

  watch() {
    if (this.closed) return;
    const state = this.pc.connectionState;
    const ice = this.pc.iceConnectionState;
    this.onState(this, state);
    window.clearTimeout(this.graceTimer);
    if (state === "connected") {
      this.restarts = 0;
    } else if (state === "failed" || ice === "failed") {
      this.restart();
    } else if (state === "disconnected" || ice === "disconnected") {
      this.graceTimer = window.setTimeout(() => {
        const now = this.pc.connectionState;
        if (now === "disconnected" || now === "failed") this.restart();
      }, DISCONNECTED_GRACE_MS);
    }
  }

  /** Restart ICE: new candidates, same call (negotiationneeded sends the offer). */
  restart() {
    if (this.closed) return;
    this.restarts += 1;
    this.pc.restartIce();
    // Keep trying while the network is away; each try is one offer through the server.
    window.clearTimeout(this.retryTimer);
    this.retryTimer = window.setTimeout(() => {
      if (!this.closed && this.pc.connectionState !== "connected") this.restart();
    }, Math.min(5000, 1500 * this.restarts));
  }

  /** An offer that got no answer for a while was lost: roll back and offer again.
   * A connection whose ICE never started although both descriptions are set (no
   * candidate ever came) restarts ICE. */
  async unstick() {
    if (this.closed) return;
    const pc = this.pc;
    if (pc.connectionState === "new" && pc.signalingState === "stable" && pc.remoteDescription
        && Date.now() - this.createdAt > STUCK_NEW_MS * (this.restarts + 1)) {
      this.restart();
      return;
    }
    if (!this.offerSince || Date.now() - this.offerSince < STUCK_OFFER_MS) return;
    this.offerSince = 0;
    try {
      await this.pc.setLocalDescription({ type: "rollback" });
      this.pc.restartIce();
      if (this.pc.signalingState === "stable") await this.negotiate();
    } catch (error) {
      console.warn("could not resend the offer", error.name);
    }
  }

  /** After this page's socket came back: renegotiate unless all is well. */
  resync() {
    if (this.pc.signalingState !== "stable" || this.pc.connectionState !== "connected") {
      this.offerSince = this.pc.signalingState === "have-local-offer" ? 1 : 0;
      if (this.offerSince) this.unstick();
      else this.restart();
    }
  }

  /** Send `track` (or nothing) as this side's `kind` (a device switch: no renegotiation). */
  async replace(kind, track) {
    const sender = this.senders[kind];
    if (sender) await sender.replaceTrack(track);
    else if (track) this.senders[kind] = this.pc.addTrack(track, this.media.stream); // renegotiates
  }

  /** Add a screen share as a second video (renegotiates: perfect negotiation handles it). */
  shareScreen(track, stream) {
    if (this.screenSender) this.screenSender.replaceTrack(track);
    else this.screenSender = this.pc.addTrack(track, stream);
  }

  stopScreen() {
    if (!this.screenSender) return;
    try {
      this.pc.removeTrack(this.screenSender);
    } catch {
      // Already closed.
    }
    this.screenSender = null;
  }

  close() {
    this.closed = true;
    window.clearInterval(this.watchdog);
    window.clearTimeout(this.graceTimer);
    window.clearTimeout(this.retryTimer);
    window.clearTimeout(this.firstOfferTimer);
    this.pc.close();
  }
}
