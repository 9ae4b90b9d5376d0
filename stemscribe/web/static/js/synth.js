// A small Web Audio synth: one simple voice per instrument family, noise and click voices for drums.

/**
 * The drum classes stemscribe writes, from the library's own table (stemscribe.transcription.drums'
 * DRUM_CLASS_TABLE, served at /drum-classes.json): GM key -> class key, class key -> name, and the
 * drum lane's rows top to bottom (the table reversed: auxiliary percussion, cymbals, ..., kick), then
 * "Perc" (class 0) for keys of no class. Empty until `loadDrumClasses()` has run.
 */
export const GM_TO_CLASS = {};
export const DRUM_CLASS_NAMES = { 0: "Perc" };
export const DRUM_ORDER = [];

let loading = null;

/** Fetch the class table once (later calls share the first); on failure every drum shows as "Perc". */
export function loadDrumClasses() {
  loading ??= fetch(new URL("../../drum-classes.json", import.meta.url))
    .then((r) => (r.ok ? r.json() : { classes: [] }))
    .catch(() => ({ classes: [] }))
    .then(({ classes }) => {
      for (const c of classes) {
        for (const k of c.members) GM_TO_CLASS[k] = c.key;
        DRUM_CLASS_NAMES[c.key] = c.name.charAt(0).toUpperCase() + c.name.slice(1);
      }
      DRUM_ORDER.splice(0, DRUM_ORDER.length, ...classes.map((c) => c.key).reverse(), 0);
      return classes;
    });
  return loading;
}

/** The drum class of a GM drum key; 0 for percussion of no class. */
export function drumClass(pitch) {
  return GM_TO_CLASS[pitch] ?? 0;
}

export function midiToHz(pitch) {
  return 440 * 2 ** ((pitch - 69) / 12);
}

// Per family: oscillator type, attack, decay to sustain level, release, low-pass cutoff (multiple of f0).
const TIMBRES = {
  piano: { type: "triangle", attack: 0.004, decay: 0.9, sustain: 0.25, release: 0.12, cutoff: 8 },
  keys: { type: "sine", attack: 0.006, decay: 0.6, sustain: 0.45, release: 0.15, cutoff: 6, detune: 7 },
  guitar: { type: "sawtooth", attack: 0.003, decay: 0.5, sustain: 0.2, release: 0.1, cutoff: 4 },
  bass: { type: "sawtooth", attack: 0.005, decay: 0.3, sustain: 0.6, release: 0.08, cutoff: 3 },
  strings: { type: "sawtooth", attack: 0.09, decay: 0.2, sustain: 0.8, release: 0.25, cutoff: 5, detune: 6 },
  brass: { type: "sawtooth", attack: 0.04, decay: 0.2, sustain: 0.75, release: 0.12, cutoff: 6 },
  winds: { type: "sine", attack: 0.05, decay: 0.1, sustain: 0.85, release: 0.12, cutoff: 10 },
  synth: { type: "square", attack: 0.01, decay: 0.2, sustain: 0.6, release: 0.1, cutoff: 7, detune: 9 },
  vocals: { type: "triangle", attack: 0.06, decay: 0.2, sustain: 0.8, release: 0.18, cutoff: 6 },
};

export class Synth {
  /** `ctx` an AudioContext (or OfflineAudioContext). */
  constructor(ctx) {
    this.ctx = ctx;
    const len = Math.floor(ctx.sampleRate * 1.5);
    this.noise = ctx.createBuffer(1, len, ctx.sampleRate);
    const data = this.noise.getChannelData(0);
    let seed = 22222;
    for (let i = 0; i < len; i++) {
      seed = (seed * 16807) % 2147483647;
      data[i] = (seed / 2147483647) * 2 - 1;
    }
  }

  /**
   * Schedule one note on `out` (an AudioNode). Returns the source nodes, so that a pause can stop them.
   * `when` is AudioContext time; `duration` seconds; `velocity` 0..1.
   */
  play(out, { family, isDrum, pitch, velocity, when, duration }) {
    const v = 0.2 + 0.8 * Math.min(1, Math.max(0, velocity ?? 0.7));
    if (isDrum) return this.#drum(out, drumClass(pitch), pitch, v, when);
    return this.#tone(out, TIMBRES[family] || TIMBRES.piano, pitch, v, when, Math.max(0.04, duration));
  }

  #tone(out, t, pitch, v, when, duration) {
    const ctx = this.ctx;
    const f0 = midiToHz(pitch);
    const peak = 0.22 * v;
    const env = ctx.createGain();
    const g = env.gain;
    const end = Math.max(when + duration, when + t.attack + 0.01);
    g.setValueAtTime(0, when);
    g.linearRampToValueAtTime(peak, when + t.attack);
    g.setTargetAtTime(peak * t.sustain, when + t.attack, t.decay / 3);
    g.setTargetAtTime(0, end, t.release / 3);
    const filter = ctx.createBiquadFilter();
    filter.type = "lowpass";
    filter.frequency.value = Math.min(16000, f0 * t.cutoff);
    filter.Q.value = 0.4;
    filter.connect(env);
    env.connect(out);
    const stopAt = end + t.release * 2;
    const sources = [];
    const detunes = t.detune ? [-t.detune, t.detune] : [0];
    for (const cents of detunes) {
      const osc = ctx.createOscillator();
      osc.type = t.type;
      osc.frequency.value = f0;
      osc.detune.value = cents;
      osc.connect(filter);
      osc.start(when);
      osc.stop(stopAt);
      sources.push(osc);
    }
    sources[0].onended = () => env.disconnect();
    return sources;
  }

  #noiseBurst(out, when, { gain, decay, highpass, bandpass }) {
    const ctx = this.ctx;
    const src = ctx.createBufferSource();
    src.buffer = this.noise;
    const env = ctx.createGain();
    env.gain.setValueAtTime(gain, when);
    env.gain.exponentialRampToValueAtTime(0.0005, when + decay);
    let node = src;
    if (highpass) {
      const hp = ctx.createBiquadFilter();
      hp.type = "highpass";
      hp.frequency.value = highpass;
      node.connect(hp);
      node = hp;
    }
    if (bandpass) {
      const bp = ctx.createBiquadFilter();
      bp.type = "bandpass";
      bp.frequency.value = bandpass;
      bp.Q.value = 0.8;
      node.connect(bp);
      node = bp;
    }
    node.connect(env);
    env.connect(out);
    src.start(when);
    src.stop(when + decay + 0.02);
    src.onended = () => env.disconnect();
    return src;
  }

  #thump(out, when, { from, to, gain, decay }) {
    const ctx = this.ctx;
    const osc = ctx.createOscillator();
    osc.type = "sine";
    osc.frequency.setValueAtTime(from, when);
    osc.frequency.exponentialRampToValueAtTime(to, when + decay * 0.5);
    const env = ctx.createGain();
    env.gain.setValueAtTime(gain, when);
    env.gain.exponentialRampToValueAtTime(0.0005, when + decay);
    osc.connect(env);
    env.connect(out);
    osc.start(when);
    osc.stop(when + decay + 0.02);
    osc.onended = () => env.disconnect();
    return osc;
  }

  #drum(out, cls, pitch, v, when) {
    switch (cls) {
      case 36:
        return [this.#thump(out, when, { from: 150, to: 45, gain: 0.9 * v, decay: 0.32 })];
      case 38:
        return [
          this.#thump(out, when, { from: 240, to: 170, gain: 0.35 * v, decay: 0.12 }),
          this.#noiseBurst(out, when, { gain: 0.45 * v, decay: 0.18, highpass: 1200 }),
        ];
      case 42:
        return [this.#noiseBurst(out, when, { gain: 0.22 * v, decay: 0.05, highpass: 7000 })];
      case 46:
        return [this.#noiseBurst(out, when, { gain: 0.2 * v, decay: 0.35, highpass: 6500 })];
      case 45:
      case 47:
      case 50: {
        const f = { 45: 90, 47: 130, 50: 180 }[cls];
        return [this.#thump(out, when, { from: f * 1.6, to: f, gain: 0.6 * v, decay: 0.3 })];
      }
      case 49:
        return [this.#noiseBurst(out, when, { gain: 0.2 * v, decay: 1.2, highpass: 4500 })];
      case 51:
        return [this.#noiseBurst(out, when, { gain: 0.14 * v, decay: 0.45, bandpass: 5200 })];
      default:
        return [this.#noiseBurst(out, when, { gain: 0.3 * v, decay: 0.06, bandpass: 600 + 40 * (pitch % 48) })];
    }
  }
}
