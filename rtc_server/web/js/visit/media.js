// The person's own camera and microphone: start them, list and switch devices,
// mute, camera off (the camera is released, its light goes off), screen share,
// and a microphone level for the meter. Whoever sends the tracks listens with
// `onTrackChange(kind, track)` and swaps them into their senders.

export class MediaError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = "MediaError";
    this.kind = kind;
  }
}

/** A message a person can act on, from getUserMedia's error names. */
export function explainMediaError(error) {
  const name = error && error.name;
  if (!window.isSecureContext || !navigator.mediaDevices) {
    return "This page can't reach your camera: open the portal over https (or on this computer).";
  }
  if (name === "NotAllowedError" || name === "SecurityError") {
    return "Camera and microphone are blocked for this site. Allow them in your browser's site settings, then reload.";
  }
  if (name === "NotFoundError" || name === "OverconstrainedError") {
    return "No camera or microphone was found. Plug one in, or choose another in the lists below.";
  }
  if (name === "NotReadableError" || name === "AbortError") {
    return "Your camera or microphone is in use by another program. Close it, then try again.";
  }
  return "Your camera or microphone could not be started.";
}

export class LocalMedia {
  constructor() {
    this.stream = new MediaStream();
    this.audioDeviceId = null;
    this.videoDeviceId = null;
    this.muted = false;
    this.cameraOff = false;
    this.screen = null; // the screen-share track while sharing
    this.listeners = new Set();
    this.audioContext = null;
    this.analyser = null;
  }

  onTrackChange(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  track(kind) {
    return kind === "audio" ? this.stream.getAudioTracks()[0] || null : this.stream.getVideoTracks()[0] || null;
  }

  emit(kind, track) {
    for (const fn of this.listeners) fn(kind, track);
  }

  /** Start the camera and microphone (either may be missing: the visit works with what there is). */
  async start() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new MediaError("unsupported", explainMediaError(null));
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 1280, height: 720 } });
    } catch (error) {
      // Try each on its own: a laptop without a camera can still talk.
      const [audio, video] = await Promise.allSettled([
        navigator.mediaDevices.getUserMedia({ audio: true }),
        navigator.mediaDevices.getUserMedia({ video: true }),
      ]);
      const tracks = [audio, video].filter((r) => r.status === "fulfilled").flatMap((r) => r.value.getTracks());
      if (!tracks.length) throw new MediaError(error && error.name, explainMediaError(error));
      stream = new MediaStream(tracks);
    }
    for (const track of stream.getTracks()) this.put(track);
    this.audioDeviceId = settingsOf(this.track("audio")).deviceId || null;
    this.videoDeviceId = settingsOf(this.track("video")).deviceId || null;
    return this.stream;
  }

  put(track) {
    const old = this.track(track.kind);
    if (old) {
      this.stream.removeTrack(old);
      old.stop();
    }
    if (track.kind === "audio") track.enabled = !this.muted;
    this.stream.addTrack(track);
    if (track.kind === "audio") this.meterSource(track);
    this.emit(track.kind, track);
  }

  /** Cameras, microphones and speakers ({kind: [{deviceId, label}]}); labels appear once allowed. */
  async devices() {
    const all = await navigator.mediaDevices.enumerateDevices();
    const pick = (kind) =>
      all.filter((d) => d.kind === kind).map((d, i) => ({ deviceId: d.deviceId, label: d.label || `${kindName(kind)} ${i + 1}` }));
    return { videoinput: pick("videoinput"), audioinput: pick("audioinput"), audiooutput: pick("audiooutput") };
  }

  async useCamera(deviceId) {
    this.videoDeviceId = deviceId;
    if (this.cameraOff) return;
    const stream = await navigator.mediaDevices.getUserMedia({ video: { deviceId: { exact: deviceId } } });
    this.put(stream.getVideoTracks()[0]);
  }

  async useMicrophone(deviceId) {
    this.audioDeviceId = deviceId;
    const stream = await navigator.mediaDevices.getUserMedia({ audio: { deviceId: { exact: deviceId } } });
    this.put(stream.getAudioTracks()[0]);
  }

  setMuted(muted) {
    this.muted = muted;
    const track = this.track("audio");
    if (track) track.enabled = !muted;
  }

  /** Camera off releases the camera; on asks for it again. */
  async setCameraOff(off) {
    if (off === this.cameraOff) return;
    this.cameraOff = off;
    if (off) {
      const track = this.track("video");
      if (track) {
        this.stream.removeTrack(track);
        track.stop();
      }
      this.emit("video", null);
      return;
    }
    const constraints = this.videoDeviceId ? { deviceId: { exact: this.videoDeviceId } } : true;
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ video: constraints });
      this.put(stream.getVideoTracks()[0]);
    } catch (error) {
      this.cameraOff = true;
      throw new MediaError(error && error.name, explainMediaError(error));
    }
  }

  /** Share a screen or window; resolves with the track (its `ended` fires when sharing stops). */
  async startScreenShare() {
    if (!navigator.mediaDevices.getDisplayMedia) {
      throw new MediaError("unsupported", "This browser can't share its screen.");
    }
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    this.screen = stream.getVideoTracks()[0];
    return this.screen;
  }

  stopScreenShare() {
    if (this.screen) this.screen.stop();
    this.screen = null;
  }

  meterSource(track) {
    try {
      if (!this.audioContext) this.audioContext = new AudioContext();
      const source = this.audioContext.createMediaStreamSource(new MediaStream([track]));
      this.analyser = this.audioContext.createAnalyser();
      this.analyser.fftSize = 512;
      source.connect(this.analyser);
    } catch {
      this.analyser = null; // no meter, the call still works
    }
  }

  /** The microphone's loudness now, 0 to 1. */
  level() {
    if (!this.analyser) return 0;
    const data = new Uint8Array(this.analyser.fftSize);
    this.analyser.getByteTimeDomainData(data);
    let peak = 0;
    for (const v of data) peak = Math.max(peak, Math.abs(v - 128));
    return Math.min(1, peak / 64);
  }

  stop() {
    for (const track of this.stream.getTracks()) track.stop();
    this.stopScreenShare();
    if (this.audioContext) this.audioContext.close().catch(() => {});
  }
}

function settingsOf(track) {
  return track && track.getSettings ? track.getSettings() : {};
}

function kindName(kind) {
  return { videoinput: "Camera", audioinput: "Microphone", audiooutput: "Speaker" }[kind] || "Device";
}

/** Play a short chime on `sinkId` (a speaker test, or a waiting room's arrival sound). */
export async function playChime(sinkId = null) {
  const context = new AudioContext();
  const destination = context.createMediaStreamDestination();
  const audio = new Audio();
  audio.srcObject = destination.stream;
  if (sinkId && audio.setSinkId) {
    try {
      await audio.setSinkId(sinkId);
    } catch {
      // Keep the default speaker.
    }
  }
  const start = context.currentTime;
  for (const [i, freq] of [660, 880].entries()) {
    const osc = context.createOscillator();
    const gain = context.createGain();
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, start + i * 0.35);
    gain.gain.exponentialRampToValueAtTime(0.3, start + i * 0.35 + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + i * 0.35 + 0.3);
    osc.connect(gain).connect(destination);
    osc.start(start + i * 0.35);
    osc.stop(start + i * 0.35 + 0.32);
  }
  try {
    await audio.play();
  } catch {
    // Autoplay may be blocked until the person interacts with the page.
  }
  window.setTimeout(() => context.close().catch(() => {}), 1200);
}
