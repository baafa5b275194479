// The call room as this page takes part in it: join through the visit socket,
// one PeerLink per other participant (a mesh of up to four), the frames the
// server relays, and what happens after a drop. When the socket reconnects the
// page joins again with `resume` (its peer id), so the others see no change and
// the connections carry on; if the seat could not be resumed every connection is
// made afresh.

import { PeerLink } from "./peer.js";
import { watchQuality } from "./quality.js";

export class CallSession {
  /**
   * @param {object} o
   * @param {VisitSocket} o.socket
   * @param {number} o.visitId
   * @param {LocalMedia} o.media
   * @param {object} o.view callbacks: peerAdded(link), peerRemoved(link), remoteStream(link, stream, track),
   *   quality(link, summary), linkState(link, state), joined(reply), ended(reason), problem(error)
   */
  constructor({ socket, visitId, media, view }) {
    this.socket = socket;
    this.visitId = visitId;
    this.media = media;
    this.view = view;
    this.peer = null;
    this.config = { iceServers: [] };
    this.links = new Map();
    this.stops = [];
    this.active = false;
    this.screen = null;
  }

  start() {
    this.active = true;
    const s = this.socket;
    this.stops.push(
      s.on("peer_joined", (f) => this.link(f)),
      s.on("bye", (f) => this.bye(f)),
      s.on("offer", (f) => this.link({ peer: f.from }).description(f)),
      s.on("answer", (f) => this.link({ peer: f.from }).description(f)),
      s.on("ice", (f) => this.link({ peer: f.from }).candidate(f.candidate)),
      s.onOpen(() => this.join()),
      this.media.onTrackChange((kind, track) => {
        for (const link of this.links.values()) link.replace(kind, track);
      }),
    );
  }

  async join() {
    if (!this.active) return;
    let reply;
    try {
      reply = await this.socket.request({ type: "join", visit: this.visitId, resume: this.peer || undefined });
    } catch (error) {
      if (error.code === "visit_ended") this.finish("ended");
      else this.view.problem(error);
      return;
    }
    this.config = { iceServers: reply.ice_servers, iceTransportPolicy: reply.ice_transport_policy };
    if (!reply.resumed) {
      for (const link of [...this.links.values()]) this.drop(link.peer);
    }
    this.peer = reply.peer;
    this.view.joined(reply);
    for (const other of reply.peers) this.link(other);
    if (reply.resumed) for (const link of this.links.values()) link.resync();
  }

  /** The link to `peer`, made on first mention (a joined list, peer_joined, or its first offer). */
  link({ peer, name, role }) {
    let link = this.links.get(peer);
    if (link) {
      if (name && !link.name) {
        link.name = name;
        link.role = role || link.role;
        this.view.peerAdded(link);
      }
      return link;
    }
    link = new PeerLink({
      me: this.peer,
      peer,
      name,
      role,
      config: this.config,
      media: this.media,
      signal: (frame) => this.socket.send(frame),
      onRemote: (l, stream, track) => this.view.remoteStream(l, stream, track),
      onState: (l, state) => this.view.linkState(l, state),
    });
    if (this.screen) link.shareScreen(this.screen.track, this.screen.stream);
    link.stopQuality = watchQuality(link, (summary) => this.view.quality(link, summary));
    this.links.set(peer, link);
    this.view.peerAdded(link);
    return link;
  }

  drop(peer) {
    const link = this.links.get(peer);
    if (!link) return;
    this.links.delete(peer);
    link.stopQuality();
    link.close();
    this.view.peerRemoved(link);
  }

  bye(frame) {
    if (frame.peer === this.peer) {
      this.finish(frame.reason);
    } else {
      this.drop(frame.peer);
    }
  }

  async shareScreen() {
    const track = await this.media.startScreenShare();
    const stream = new MediaStream([track]);
    this.screen = { track, stream };
    for (const link of this.links.values()) link.shareScreen(track, stream);
    track.addEventListener("ended", () => this.stopScreen());
    return track;
  }

  stopScreen() {
    if (!this.screen) return;
    this.screen = null;
    for (const link of this.links.values()) link.stopScreen();
    this.media.stopScreenShare();
  }

  /** Leave the call (the socket stays open; the visit stays open for the others). */
  leave() {
    if (!this.active) return;
    this.socket.send({ type: "leave" });
    this.finish("left");
  }

  finish(reason) {
    if (!this.active) return;
    this.active = false;
    for (const stop of this.stops) stop();
    this.stops = [];
    for (const peer of [...this.links.keys()]) this.drop(peer);
    this.stopScreen();
    this.view.ended(reason);
  }
}
