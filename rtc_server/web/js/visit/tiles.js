// The call's video tiles: one per other participant (their camera, and their screen
// when they share it), a name, and a connection-quality badge fed by quality.js.
// Names are inserted as text. Each tile carries what the quality reading says
// (data-state, data-frames-decoded), which is also what the indicator shows.

import { h, replaceChildren } from "../dom.js";
import { grade } from "./quality.js";

const ROLE_LABELS = { provider: "Provider", patient: "Patient", guest: "Guest" };

export class Tiles {
  constructor(stage, empty, onSoundBlocked) {
    this.stage = stage;
    this.empty = empty;
    this.tiles = new Map(); // peer -> {figure, caption, badge, videos: Map(streamId -> video)}
    this.onSoundBlocked = onSoundBlocked;
  }

  ensure(link) {
    let tile = this.tiles.get(link.peer);
    if (!tile) {
      const videos = h("div", { class: "tile__videos" });
      const badge = h("span", { class: "badge tile__quality", text: "Connecting…" });
      const name = h("span", { class: "tile__name" });
      const figure = h("figure", { class: "tile tile--remote", dataset: { peer: link.peer, state: "new", framesDecoded: "0" } },
        videos, h("figcaption", {}, name, " ", badge));
      tile = { figure, videos, badge, name, streams: new Map() };
      this.tiles.set(link.peer, tile);
      this.stage.append(figure);
    }
    const who = link.name || "Participant";
    tile.name.textContent = link.role && ROLE_LABELS[link.role] && link.role !== "patient" ? `${who} (${ROLE_LABELS[link.role]})` : who;
    this.empty.hidden = this.tiles.size > 0;
    return tile;
  }

  stream(link, stream) {
    const tile = this.ensure(link);
    let video = tile.streams.get(stream.id);
    if (!video) {
      const first = tile.streams.size === 0;
      video = h("video", {
        class: "video video--remote",
        autoplay: true,
        playsinline: true,
        "aria-label": first ? `${link.name || "Participant"}'s camera` : `${link.name || "Participant"}'s shared screen`,
      });
      tile.streams.set(stream.id, video);
      tile.videos.append(video);
      stream.addEventListener("removetrack", () => {
        if (!stream.getTracks().some((t) => t.readyState === "live") && !first) {
          video.remove();
          tile.streams.delete(stream.id);
        }
      });
    }
    if (video.srcObject !== stream) video.srcObject = stream;
    video.play().catch(() => {
      // Sound may not start without a click: play muted and offer to turn it on.
      video.muted = true;
      video.play().catch(() => {});
      this.onSoundBlocked(video);
    });
  }

  state(link, state) {
    const tile = this.tiles.get(link.peer);
    if (!tile) return;
    tile.figure.dataset.state = state;
    if (state === "connecting" || state === "new") tile.badge.textContent = "Connecting…";
    if (state === "disconnected" || state === "failed") {
      tile.badge.textContent = "Reconnecting…";
      tile.badge.className = "badge badge--warning tile__quality";
    }
  }

  quality(link, summary) {
    const tile = this.tiles.get(link.peer);
    if (!tile) return null;
    tile.figure.dataset.framesDecoded = String(summary.framesDecoded);
    tile.figure.dataset.relayed = String(summary.relayed);
    if (link.state !== "connected") return null;
    const { level, text } = grade(summary);
    const labels = { good: "Good connection", fair: "Fair connection", poor: "Poor connection", unknown: "Measuring…" };
    tile.badge.textContent = labels[level];
    tile.badge.className = `badge tile__quality ${level === "good" ? "badge--success" : level === "poor" ? "badge--danger" : "badge--warning"}`;
    tile.badge.title = text;
    return { level, text };
  }

  remove(link) {
    const tile = this.tiles.get(link.peer);
    if (!tile) return;
    for (const video of tile.streams.values()) video.srcObject = null;
    tile.figure.remove();
    this.tiles.delete(link.peer);
    this.empty.hidden = this.tiles.size > 0;
  }

  clear() {
    for (const peer of [...this.tiles.keys()]) this.remove({ peer });
    replaceChildren(this.empty, "Waiting for the others to join…");
  }
}
