// The piano roll: a canvas that stays put inside a horizontally scrolling strip as wide as the song.
//
// Pitched notes share one pitch axis; drums get their own lane at the bottom, one row per drum class
// played (the library's class table, synth.js' loadDrumClasses).

import { DRUM_CLASS_NAMES, DRUM_ORDER, drumClass } from "./synth.js";
import { formatTime } from "./format.js";

const GUTTER = 46; // px: note names on the left
const RULER = 22; // px: time labels on top
const DRUM_ROW = 13; // px per drum row
const MAX_PPS = 600; // px per second at the closest zoom
const NOTE_NAMES = ["C", "C♯", "D", "D♯", "E", "F", "F♯", "G", "G♯", "A", "A♯", "B"];
const BLACK = new Set([1, 3, 6, 8, 10]);
const STEPS = [0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300];

const C = {
  bg: "#12151c",
  blackRow: "#171b25",
  cLine: "#2a3142",
  beat: "#222837",
  gutter: "#0b0e14",
  gutterText: "#b9c0cf",
  ruler: "#0b0e14",
  rulerText: "#c9cfdc",
  tick: "#3a4254",
  lane: "#0f1218",
  laneLine: "#2e3547",
  playhead: "#ff5a5f",
};

function lowerBoundTime(times, t) {
  let lo = 0;
  let hi = times.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (times[mid] < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function lowerBound(notes, t) {
  let lo = 0;
  let hi = notes.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (notes[mid].start < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** A ruler label: "1:05" for whole-second steps, "0:01.25" for finer ones. */
export function rulerLabel(t, step) {
  const m = Math.floor(t / 60 + 1e-9);
  const sec = t - m * 60;
  const digits = step >= 1 ? 0 : step >= 0.5 || step === 0.1 ? 1 : 2;
  const text = sec.toFixed(digits);
  return `${m}:${text.padStart(digits ? 3 + digits : 2, "0")}`;
}

export function noteName(pitch) {
  return `${NOTE_NAMES[pitch % 12]}${Math.floor(pitch / 12) - 1}`;
}

export class PianoRoll {
  constructor(scroller, spacer, canvas, { onSeek, onZoom } = {}) {
    this.scroller = scroller;
    this.spacer = spacer;
    this.canvas = canvas;
    this.onSeek = onSeek;
    this.onZoom = onZoom;
    this.tracks = [];
    this.duration = 1;
    this.beats = [];
    this.drumRows = [];
    this.lowPitch = 48;
    this.highPitch = 72;
    this.hasPitched = false;
    this.pps = 50;
    this.fitted = true;
    this.playhead = 0;
    this.drawn = 0;
    this.pending = false;
    scroller.addEventListener("scroll", () => this.requestDraw(), { passive: true });
    new ResizeObserver(() => this.#resize()).observe(scroller);
    canvas.addEventListener("pointerdown", (e) => this.#pointer(e));
    scroller.addEventListener("keydown", (e) => this.#key(e));
    scroller.addEventListener(
      "wheel",
      (e) => {
        if (!(e.ctrlKey || e.metaKey)) return;
        e.preventDefault();
        this.zoomBy(e.deltaY < 0 ? 1.25 : 0.8, this.#timeAtX(e.offsetX));
      },
      { passive: false },
    );
  }

  /** Show `result` (the task's result); `colours[i]` colours instrument i. */
  setData(result, colours) {
    const instruments = result.instruments || [];
    this.tracks = instruments.map((inst, i) => {
      const notes = [...(inst.notes || [])].sort((a, b) => a.start - b.start);
      return {
        name: inst.name,
        isDrum: Boolean(inst.is_drum),
        colour: colours[i],
        visible: true,
        notes,
        maxLen: notes.reduce((m, n) => Math.max(m, n.end - n.start), 0),
      };
    });
    // Loops, not Math.max(...spread): a long song has more notes than a call may have arguments.
    let lastEnd = 0;
    let lo = Infinity;
    let hi = -Infinity;
    for (const t of this.tracks) {
      for (const n of t.notes) {
        lastEnd = Math.max(lastEnd, n.end);
        if (t.isDrum) continue;
        lo = Math.min(lo, n.pitch);
        hi = Math.max(hi, n.pitch);
      }
    }
    this.duration = Math.max(Number(result.duration) || 0, lastEnd, 0.5);
    this.beats = Array.isArray(result.beats) ? result.beats : [];
    this.hasPitched = hi >= lo;
    lo = this.hasPitched ? Math.max(0, lo - 2) : 48;
    hi = this.hasPitched ? Math.min(127, hi + 2) : 72;
    if (hi - lo < 24) {
      const mid = (hi + lo) / 2;
      lo = Math.max(0, Math.round(mid - 12));
      hi = Math.min(127, lo + 24);
    }
    this.lowPitch = lo;
    this.highPitch = hi;
    const used = new Set(this.tracks.filter((t) => t.isDrum).flatMap((t) => t.notes.map((n) => drumClass(n.pitch))));
    this.drumRows = (DRUM_ORDER.length ? DRUM_ORDER : [0]).filter((c) => used.has(c));
    this.playhead = 0;
    this.scroller.scrollLeft = 0;
    this.fit();
  }

  setVisible(index, visible) {
    if (this.tracks[index]) this.tracks[index].visible = visible;
    this.requestDraw();
  }

  get viewWidth() {
    return Math.max(1, this.scroller.clientWidth - GUTTER);
  }

  get fitPps() {
    return this.viewWidth / this.duration;
  }

  /** Zoom as 0 (whole song in view) .. 1 (closest), on a log scale; what the zoom slider shows. */
  get zoomFraction() {
    const lo = Math.log(this.fitPps);
    const hi = Math.log(Math.max(MAX_PPS, this.fitPps * 1.01));
    return Math.min(1, Math.max(0, (Math.log(this.pps) - lo) / (hi - lo)));
  }

  setZoomFraction(f, anchor) {
    const lo = Math.log(this.fitPps);
    const hi = Math.log(Math.max(MAX_PPS, this.fitPps * 1.01));
    this.setPps(Math.exp(lo + Math.min(1, Math.max(0, f)) * (hi - lo)), anchor);
  }

  zoomBy(factor, anchor) {
    this.setPps(this.pps * factor, anchor);
  }

  fit() {
    this.setPps(this.fitPps);
  }

  /** Set pixels per second, keeping time `anchor` (default: the middle of the view) where it is. */
  setPps(pps, anchor) {
    const fit = this.fitPps;
    const next = Math.min(Math.max(MAX_PPS, fit), Math.max(fit, pps));
    const viewStart = this.scroller.scrollLeft / this.pps;
    const a = anchor ?? viewStart + this.viewWidth / this.pps / 2;
    const ax = (a - viewStart) * this.pps;
    this.pps = next;
    this.fitted = next <= fit * 1.0001;
    this.spacer.style.width = `${Math.ceil(GUTTER + this.duration * next)}px`;
    this.scroller.scrollLeft = Math.max(0, a * next - ax);
    this.onZoom?.(this.zoomFraction);
    this.requestDraw();
  }

  /** Move the playhead; with `follow`, scroll so that it stays in view. */
  setPlayhead(t, { follow = false } = {}) {
    this.playhead = t;
    if (follow && !this.fitted) {
      const viewStart = this.scroller.scrollLeft / this.pps;
      const span = this.viewWidth / this.pps;
      if (t < viewStart || t > viewStart + span * 0.9) {
        this.scroller.scrollLeft = Math.max(0, (t - span * 0.1) * this.pps);
      }
    }
    this.requestDraw();
  }

  requestDraw() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  #resize() {
    if (this.fitted) this.fit();
    else this.setPps(this.pps);
  }

  #timeAtX(x) {
    return this.scroller.scrollLeft / this.pps + (x - GUTTER) / this.pps;
  }

  #pointer(e) {
    if (e.button !== 0) return;
    const rect = this.canvas.getBoundingClientRect();
    const x = e.clientX - rect.left;
    if (x < GUTTER) return;
    this.onSeek?.(Math.min(this.duration, Math.max(0, this.#timeAtX(x))));
  }

  #key(e) {
    const span = this.viewWidth;
    const keys = {
      ArrowRight: () => (this.scroller.scrollLeft += span * 0.2),
      ArrowLeft: () => (this.scroller.scrollLeft -= span * 0.2),
      PageDown: () => (this.scroller.scrollLeft += span * 0.9),
      PageUp: () => (this.scroller.scrollLeft -= span * 0.9),
      Home: () => (this.scroller.scrollLeft = 0),
      End: () => (this.scroller.scrollLeft = this.scroller.scrollWidth),
      "+": () => this.zoomBy(1.5),
      "=": () => this.zoomBy(1.5),
      "-": () => this.zoomBy(1 / 1.5),
      0: () => this.fit(),
    };
    const action = keys[e.key];
    if (!action || e.altKey || e.ctrlKey || e.metaKey) return;
    e.preventDefault();
    action();
  }

  draw() {
    const canvas = this.canvas;
    const cssW = this.scroller.clientWidth;
    const cssH = canvas.clientHeight || 300;
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(cssH * dpr)) {
      canvas.style.width = `${cssW}px`;
      canvas.width = Math.round(cssW * dpr);
      canvas.height = Math.round(cssH * dpr);
    }
    const g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.fillStyle = C.bg;
    g.fillRect(0, 0, cssW, cssH);

    const pps = this.pps;
    const viewStart = this.scroller.scrollLeft / pps;
    const viewEnd = viewStart + (cssW - GUTTER) / pps;
    const x = (t) => GUTTER + (t - viewStart) * pps;

    const laneH = this.drumRows.length ? this.drumRows.length * DRUM_ROW + 6 : 0;
    const top = RULER;
    const pitchedH = Math.max(0, cssH - RULER - laneH);
    const span = this.highPitch - this.lowPitch + 1;
    const rowH = this.hasPitched || !laneH ? pitchedH / span : 0;
    const y = (p) => top + (this.highPitch - p) * rowH;

    // Pitch rows: black keys shaded, a line under each C.
    if (rowH > 0) {
      for (let p = this.lowPitch; p <= this.highPitch; p++) {
        if (BLACK.has(p % 12)) {
          g.fillStyle = C.blackRow;
          g.fillRect(GUTTER, y(p), cssW - GUTTER, rowH);
        }
        if (p % 12 === 0) {
          g.fillStyle = C.cLine;
          g.fillRect(GUTTER, y(p) + rowH - 1, cssW - GUTTER, 1);
        }
      }
    }

    // Beats (or whole seconds when the result has no beat grid).
    g.fillStyle = C.beat;
    const beats = this.beats.length ? this.beats : null;
    const minGap = 6 / pps;
    let last = -Infinity;
    const gridTimes = beats ?? Array.from({ length: Math.ceil(this.duration) + 1 }, (_, i) => i);
    for (let i = lowerBoundTime(gridTimes, viewStart); i < gridTimes.length; i++) {
      const b = gridTimes[i];
      if (b > viewEnd) break;
      if (b - last < minGap) continue;
      last = b;
      g.fillRect(Math.round(x(b)), top, 1, pitchedH + laneH);
    }

    // Drum lane.
    const laneTop = top + pitchedH;
    if (laneH) {
      g.fillStyle = C.lane;
      g.fillRect(GUTTER, laneTop, cssW - GUTTER, laneH);
      g.fillStyle = C.laneLine;
      g.fillRect(0, laneTop, cssW, 2);
    }
    const drumY = new Map(this.drumRows.map((c, i) => [c, laneTop + 4 + i * DRUM_ROW]));

    // Notes.
    let drawn = 0;
    for (const track of this.tracks) {
      if (!track.visible) continue;
      g.fillStyle = track.colour;
      const notes = track.notes;
      for (let i = lowerBound(notes, viewStart - track.maxLen); i < notes.length; i++) {
        const n = notes[i];
        if (n.start > viewEnd) break;
        if (n.end < viewStart) continue;
        const x0 = x(n.start);
        if (track.isDrum) {
          const w = Math.max(3, Math.min(8, (n.end - n.start) * pps));
          g.fillRect(x0, drumY.get(drumClass(n.pitch)) ?? laneTop, w, DRUM_ROW - 3);
        } else {
          const w = Math.max(2, (n.end - n.start) * pps - 1);
          g.fillRect(x0, y(n.pitch), w, Math.max(2, rowH - 1));
        }
        drawn += 1;
      }
    }
    this.drawn = drawn;

    // Gutter: note names at each C, drum names in the lane.
    g.fillStyle = C.gutter;
    g.fillRect(0, 0, GUTTER, cssH);
    g.font = "11px system-ui, sans-serif";
    g.textBaseline = "middle";
    g.fillStyle = C.gutterText;
    if (rowH > 0) {
      const every = rowH * 12 < 14 ? 24 : 12;
      for (let p = this.lowPitch; p <= this.highPitch; p++) {
        if (p % every === 0) g.fillText(noteName(p), 6, y(p) + rowH / 2);
      }
    }
    for (const [cls, ry] of drumY) g.fillText(DRUM_CLASS_NAMES[cls], 4, ry + (DRUM_ROW - 3) / 2);

    // Ruler.
    g.fillStyle = C.ruler;
    g.fillRect(0, 0, cssW, RULER);
    const step = STEPS.find((s) => s * pps >= 64) ?? 600;
    g.fillStyle = C.rulerText;
    g.textBaseline = "middle";
    for (let t = Math.ceil(viewStart / step) * step; t <= viewEnd; t += step) {
      const tx = Math.round(x(t));
      g.fillStyle = C.tick;
      g.fillRect(tx, RULER - 6, 1, 6);
      const label = rulerLabel(t, step);
      if (tx + 3 + g.measureText(label).width > cssW) continue;
      g.fillStyle = C.rulerText;
      g.fillText(label, tx + 3, RULER / 2 - 1);
    }

    // Playhead.
    if (this.playhead >= viewStart && this.playhead <= viewEnd) {
      const px = Math.round(x(this.playhead));
      g.fillStyle = C.playhead;
      g.fillRect(px - 1, RULER - 4, 2, cssH - RULER + 4);
      g.beginPath();
      g.moveTo(px - 6, 0);
      g.lineTo(px + 6, 0);
      g.lineTo(px, RULER - 4);
      g.closePath();
      g.fill();
    }

    const visible = this.tracks.filter((t) => t.visible);
    const total = visible.reduce((sum, t) => sum + t.notes.length, 0);
    canvas.dataset.instruments = String(visible.length);
    canvas.dataset.notes = String(total);
    canvas.dataset.drawn = String(drawn);
    canvas.setAttribute(
      "aria-label",
      `Piano roll: ${visible.length} instrument${visible.length === 1 ? "" : "s"} shown, ` +
        `${total} notes, ${formatTime(this.duration)} long`,
    );
  }
}
