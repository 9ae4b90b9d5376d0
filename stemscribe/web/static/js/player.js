// Plays a transcription with the Web Audio synth and the original audio beside it, on one clock.
//
// Both run at once while playing; A/B switching only swaps two gains, so the switch is instant and in
// time. The AudioContext clock is the master; the original <audio> element is nudged back when it drifts.

import { Synth } from "./synth.js";

const LOOKAHEAD = 0.3; // seconds of notes scheduled ahead of the clock
const TICK_MS = 25;
const DRIFT = 0.12; // seconds the original may drift before it is re-seeked

function firstAtOrAfter(notes, t) {
  let lo = 0;
  let hi = notes.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (notes[mid].start < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class Player extends EventTarget {
  constructor() {
    super();
    this.ctx = null;
    this.tracks = [];
    this.duration = 0;
    this.playing = false;
    this.offset = 0;
    this.mode = "midi";
    this.volume = 0.8;
    this.active = new Set();
    this.timer = null;
    this.lastSync = 0;
    this.original = new Audio();
    this.original.preload = "auto";
    this.originalReady = false;
    this.original.addEventListener("canplay", () => {
      if (!this.originalReady && this.original.src) {
        this.originalReady = true;
        this.#emit("original", { ready: true });
      }
    });
    this.original.addEventListener("error", () => {
      if (!this.original.getAttribute("src")) return;
      this.originalReady = false;
      this.#emit("original", { ready: false, error: true });
    });
  }

  #emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** Load a result (the task's `result` object); stops playback. */
  load(result) {
    this.pause();
    this.offset = 0;
    this.tracks = (result.instruments || []).map((inst) => ({
      family: inst.family || "piano",
      isDrum: Boolean(inst.is_drum),
      notes: [...(inst.notes || [])].sort((a, b) => a.start - b.start),
      muted: false,
      gain: null,
      next: 0,
    }));
    // (a loop, not Math.max(...spread): a long song has more notes than a call has arguments)
    let lastEnd = 0;
    for (const t of this.tracks) for (const n of t.notes) lastEnd = Math.max(lastEnd, n.end);
    this.duration = Math.max(Number(result.duration) || 0, lastEnd);
    if (this.ctx) this.#connectTracks();
    this.#emit("state");
  }

  /** Point the original player at `url` (a same-origin or blob: URL), or at nothing. */
  setOriginal(url) {
    this.originalReady = false;
    if (url) {
      this.original.src = url;
      this.original.load();
    } else {
      this.original.removeAttribute("src");
      this.original.load();
    }
  }

  #ensureContext() {
    if (this.ctx) return;
    const ctx = new AudioContext({ latencyHint: "interactive" });
    this.ctx = ctx;
    this.master = ctx.createGain();
    this.master.gain.value = this.volume;
    const limiter = ctx.createDynamicsCompressor();
    limiter.threshold.value = -10;
    limiter.ratio.value = 8;
    this.master.connect(limiter);
    limiter.connect(ctx.destination);
    this.synthBus = ctx.createGain();
    this.origBus = ctx.createGain();
    this.synthBus.connect(this.master);
    this.origBus.connect(this.master);
    ctx.createMediaElementSource(this.original).connect(this.origBus);
    this.synth = new Synth(ctx);
    this.#applyMode(0);
    this.#connectTracks();
  }

  #connectTracks() {
    for (const track of this.tracks) {
      if (track.gain) continue;
      track.gain = this.ctx.createGain();
      track.gain.gain.value = track.muted ? 0 : 1;
      track.gain.connect(this.synthBus);
    }
  }

  /** The position in seconds. */
  time() {
    if (!this.playing) return this.offset;
    const t = this.startOffset + (this.ctx.currentTime - this.t0);
    return Math.min(this.duration, Math.max(this.startOffset, t));
  }

  async play() {
    if (this.playing || this.duration <= 0) return;
    this.#ensureContext();
    if (this.ctx.state !== "running") await this.ctx.resume();
    if (this.offset >= this.duration - 0.02) this.offset = 0;
    this.startOffset = this.offset;
    this.t0 = this.ctx.currentTime + 0.06;
    this.playing = true;
    for (const track of this.tracks) {
      track.next = firstAtOrAfter(track.notes, this.startOffset);
      if (track.isDrum) continue;
      // Notes already sounding at the start position: play what is left of them.
      for (let i = 0; i < track.next; i++) {
        const n = track.notes[i];
        if (n.end > this.startOffset + 0.05) this.#schedule(track, n, this.startOffset);
      }
    }
    if (this.originalReady) {
      this.original.currentTime = this.startOffset;
      this.original.play().catch(() => {});
    }
    this.lastSync = performance.now();
    this.#tick();
    this.timer = setInterval(() => this.#tick(), TICK_MS);
    this.#emit("state");
  }

  pause() {
    if (!this.playing) return;
    this.offset = this.time();
    this.playing = false;
    clearInterval(this.timer);
    this.timer = null;
    for (const src of this.active) {
      try {
        src.stop();
      } catch {
        /* not started yet or already stopped */
      }
    }
    this.active.clear();
    this.original.pause();
    this.#emit("state");
  }

  toggle() {
    return this.playing ? this.pause() : this.play();
  }

  /** Move to `t` seconds, playing on from there if playing. */
  seek(t) {
    const target = Math.min(this.duration, Math.max(0, Number(t) || 0));
    if (this.playing) {
      this.pause();
      this.offset = target;
      return this.play();
    }
    this.offset = target;
    if (this.originalReady) this.original.currentTime = target;
    this.#emit("state");
  }

  /** "midi" (A, the transcription) or "original" (B). */
  setMode(mode) {
    this.mode = mode === "original" ? "original" : "midi";
    if (this.ctx) this.#applyMode(0.015);
  }

  #applyMode(tau) {
    const now = this.ctx.currentTime;
    const synth = this.mode === "midi" ? 1 : 0;
    for (const [bus, value] of [[this.synthBus, synth], [this.origBus, 1 - synth]]) {
      if (tau) bus.gain.setTargetAtTime(value, now, tau);
      else bus.gain.value = value;
    }
  }

  setMuted(index, muted) {
    const track = this.tracks[index];
    if (!track) return;
    track.muted = muted;
    if (track.gain) track.gain.gain.setTargetAtTime(muted ? 0 : 1, this.ctx.currentTime, 0.01);
  }

  setVolume(v) {
    this.volume = v;
    if (this.master) this.master.gain.setTargetAtTime(v, this.ctx.currentTime, 0.02);
  }

  #schedule(track, note, from) {
    const ctx = this.ctx;
    const start = Math.max(note.start, from);
    let when = this.t0 + (start - this.startOffset);
    if (when < ctx.currentTime) when = ctx.currentTime + 0.005;
    const sources = this.synth.play(track.gain, {
      family: track.family,
      isDrum: track.isDrum,
      pitch: note.pitch,
      velocity: note.velocity,
      when,
      duration: note.end - start,
    });
    for (const src of sources) {
      this.active.add(src);
      src.addEventListener("ended", () => this.active.delete(src));
    }
  }

  #tick() {
    if (!this.playing) return;
    const now = this.time();
    if (now >= this.duration) {
      this.pause();
      this.offset = this.duration;
      this.#emit("ended");
      return;
    }
    const horizon = now + LOOKAHEAD;
    for (const track of this.tracks) {
      const notes = track.notes;
      while (track.next < notes.length && notes[track.next].start < horizon) {
        this.#schedule(track, notes[track.next], this.startOffset);
        track.next += 1;
      }
    }
    if (this.originalReady && performance.now() - this.lastSync > 500) {
      this.lastSync = performance.now();
      if (now < this.original.duration && Math.abs(this.original.currentTime - now) > DRIFT) {
        this.original.currentTime = now;
      }
      if (this.original.paused && now < this.original.duration) this.original.play().catch(() => {});
    }
  }
}
