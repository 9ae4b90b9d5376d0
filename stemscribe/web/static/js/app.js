// The page: choose audio, start a job, follow it, then show, play and download the result.

import { Api, ApiError } from "./api.js";
import { STAGE_TEXT, STEM_TEXT, colourOf, describeError, formatAgo, formatBytes, formatTime } from "./format.js";
import { Player } from "./player.js";
import { PianoRoll } from "./roll.js";
import { loadDrumClasses } from "./synth.js";
import { ScoreView } from "./score.js";
import { dialectRequests } from "./snippets.js";

const $ = (id) => document.getElementById(id);
const STAGES = ["upload", "queued", "loading", "separating", "transcribing", "drums", "assigning", "done"];
const TERMINAL = new Set(["succeeded", "failed", "expired"]);

const api = new Api();
const player = new Player();
const roll = new PianoRoll($("roll-scroll"), $("roll-spacer"), $("roll"), {
  onSeek: (t) => {
    player.seek(t);
    roll.setPlayhead(t);
    updateClock();
  },
  onZoom: (f) => {
    $("zoom").value = String(Math.round(f * 100));
  },
});

const score = new ScoreView(api, $("score-status"), $("score-pages"));

const state = {
  file: null,
  task: null,
  pollTimer: null,
  pollFailures: 0,
  seenStages: new Set(),
  originalUrl: null,
  jobToken: 0,
  revealOnDone: false,
  polls: 0,
  view: "roll",
};

// ---------- small helpers ----------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "style") Object.assign(node.style, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v === true) node.setAttribute(k, "");
    else if (v !== false && v !== null && v !== undefined) node.setAttribute(k, v);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function baseName(filename) {
  const name = (filename || "").split(/[\\/]/).pop() || "";
  const dot = name.lastIndexOf(".");
  return (dot > 0 ? name.slice(0, dot) : name) || "stemscribe";
}

function showMessage(headline, detail = "") {
  const box = $("error");
  box.replaceChildren(el("strong", {}, headline), detail ? el("span", {}, detail) : null);
  box.hidden = false;
}

function showError(err) {
  const { headline, detail } = describeError(err);
  showMessage(headline, detail);
  if (err && err.status === 401) openKeyPanel();
}

function clearError() {
  $("error").hidden = true;
  $("error").replaceChildren();
}

function openKeyPanel() {
  $("key-panel").open = true;
  $("api-key").focus();
}

function setBusy(busy) {
  $("go").disabled = busy;
  $("go").textContent = busy ? "Working…" : "Transcribe";
}

// ---------- API key ----------

function renderKeyState() {
  $("key-state").textContent = api.key ? "API key: saved" : "API key";
  $("api-key").value = api.key;
}

$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  api.setKey($("api-key").value);
  renderKeyState();
  if (state.task && !$("result").hidden) renderSnippets(state.task);
  $("key-panel").open = false;
  clearError();
  loadJobs();
});

$("key-forget").addEventListener("click", () => {
  api.setKey("");
  renderKeyState();
  if (state.task && !$("result").hidden) renderSnippets(state.task);
  loadJobs();
});

// ---------- choosing audio ----------

function setFile(file) {
  state.file = file || null;
  const label = $("file-name");
  if (state.file) {
    label.textContent = `${state.file.name} · ${formatBytes(state.file.size)}`;
    label.hidden = false;
    $("url").value = "";
  } else {
    label.hidden = true;
    label.textContent = "";
  }
}

$("file").addEventListener("change", () => setFile($("file").files[0]));
$("url").addEventListener("input", () => {
  if ($("url").value.trim() && state.file) {
    setFile(null);
    $("file").value = "";
  }
});

const drop = $("drop");
for (const type of ["dragenter", "dragover"]) {
  drop.addEventListener(type, (e) => {
    e.preventDefault();
    drop.classList.add("dragging");
  });
}
for (const type of ["dragleave", "drop"]) {
  drop.addEventListener(type, () => drop.classList.remove("dragging"));
}
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  const file = e.dataTransfer && e.dataTransfer.files[0];
  if (file) setFile(file);
});
// A file dropped anywhere on the page is taken too (the browser would otherwise open it instead of the page).
window.addEventListener("dragover", (e) => e.preventDefault());
window.addEventListener("drop", (e) => {
  const taken = e.defaultPrevented; // the drop zone had it already
  e.preventDefault();
  const file = e.dataTransfer && e.dataTransfer.files[0];
  if (file && !taken) setFile(file);
});

// ---------- starting and following a job ----------

$("job-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  clearError();
  const stem = $("stem").value;
  const url = $("url").value.trim();
  if (!state.file && !url) {
    showMessage("Choose an audio file or paste a link first.");
    return;
  }
  if (state.file && state.file.size === 0) {
    showError({ code: "empty_audio", message: `${state.file.name} is 0 bytes.` });
    return;
  }
  if (!state.file) {
    try {
      const parsed = new URL(url);
      if (!["http:", "https:"].includes(parsed.protocol)) throw new TypeError();
    } catch {
      showMessage("That link is not a web address.", "Paste a link that starts with http:// or https://.");
      return;
    }
  }
  stopPolling();
  hideResultUnless("");
  const token = ++state.jobToken;
  setBusy(true);
  state.seenStages = new Set();
  state.revealOnDone = true;
  state.polls = 0;
  try {
    let body;
    if (state.file) {
      renderProgress({ state: "running", stage: "upload", progress: 0 });
      const upload = await api.upload(state.file, (f) => {
        if (token === state.jobToken) renderProgress({ state: "running", stage: "upload", progress: f }, true);
      });
      body = { audio_id: upload.id, stem };
    } else {
      renderProgress({ state: "queued", stage: "queued", progress: 0 });
      body = { audio_url: url, stem };
    }
    const task = await api.createTranscription(body);
    if (token !== state.jobToken) return;
    setHash(task.id);
    follow(task, token);
    loadJobs();
  } catch (err) {
    if (token !== state.jobToken) return;
    $("progress").hidden = true;
    setBusy(false);
    showError(err);
  }
});

function renderProgress(task, uploadFraction = false) {
  const box = $("progress");
  box.hidden = false;
  const stage = task.stage && STAGES.includes(task.stage) ? task.stage : task.state === "queued" ? "queued" : "loading";
  state.seenStages.add(stage);
  const fraction = Math.max(0, Math.min(1, Number(task.progress) || 0));
  const pct = Math.round((task.state === "succeeded" ? 1 : fraction) * 100);
  const text = uploadFraction ? STAGE_TEXT.upload : STAGE_TEXT[stage] || "Working";
  // Only a changed stage is announced (the text is a live region); the percentage changes quietly.
  if ($("progress-text").textContent !== text) $("progress-text").textContent = text;
  $("progress-pct").textContent = `${pct}%`;
  $("progress-bar").value = pct;
  const at = STAGES.indexOf(stage);
  for (const li of $("stages").children) {
    const i = STAGES.indexOf(li.dataset.stage);
    li.classList.toggle("current", i === at && task.state !== "succeeded");
    li.classList.toggle("done", i < at ? state.seenStages.has(li.dataset.stage) : task.state === "succeeded" && i === at);
    li.classList.toggle("skipped", i < at && !state.seenStages.has(li.dataset.stage));
  }
}

function stopPolling() {
  clearTimeout(state.pollTimer);
  state.pollTimer = null;
}

/** Put away a shown result that belongs to another job (it stops playing). */
function hideResultUnless(taskId) {
  if ($("result").hidden || $("result").dataset.taskId === taskId) return;
  player.pause();
  $("result").hidden = true;
}

/** Show `task`, and keep polling it until it ends. */
function follow(task, token) {
  state.task = task;
  highlightJob(task.id);
  updateJobState(task);
  if (task.state === "succeeded") {
    $("progress").hidden = true;
    setBusy(false);
    showResult(task);
    if (state.revealOnDone) {
      state.revealOnDone = false;
      $("result").scrollIntoView({ block: "start" });
    }
    return;
  }
  if (TERMINAL.has(task.state)) {
    $("progress").hidden = true;
    setBusy(false);
    hideResultUnless(task.id);
    const err = task.error || {};
    showError({ code: task.state === "expired" ? "expired" : err.code || "failed", message: err.message || "" });
    loadJobs();
    return;
  }
  setBusy(true);
  hideResultUnless(task.id);
  renderProgress(task);
  // Quick polls while a short job runs, slower ones for long jobs and while the server is unreachable.
  state.polls += 1;
  const delay = Math.min(5000, (state.polls < 20 ? 400 : state.polls < 80 ? 1000 : 2000) + state.pollFailures * 500);
  state.pollTimer = setTimeout(async () => {
    if (token !== state.jobToken) return;
    try {
      const next = await api.getTranscription(task.id);
      state.pollFailures = 0;
      if (token !== state.jobToken) return;
      const finished = TERMINAL.has(next.state);
      follow(next, token);
      if (finished && next.state === "succeeded") loadJobs();
    } catch (err) {
      if (token !== state.jobToken) return;
      if (err instanceof ApiError && err.status === 0 && state.pollFailures < 20) {
        state.pollFailures += 1;
        follow(task, token);
        $("progress-text").textContent = "Lost contact with the server, retrying…";
        return;
      }
      setBusy(false);
      $("progress").hidden = true;
      showError(err);
    }
  }, delay);
}

async function openJob(id, { scroll = true } = {}) {
  stopPolling();
  const token = ++state.jobToken;
  clearError();
  await loadDrumClasses(); // the drum lane's rows come from the library's class table
  state.seenStages = new Set();
  state.revealOnDone = scroll;
  state.polls = 0;
  try {
    const task = await api.getTranscription(id);
    if (token !== state.jobToken) return;
    setHash(task.id);
    follow(task, token);
  } catch (err) {
    if (token !== state.jobToken) return;
    showError(err);
  }
}

function setHash(id) {
  const want = `#job=${encodeURIComponent(id)}`;
  if (location.hash !== want) history.replaceState(null, "", want);
}

// ---------- the result ----------

function showResult(task) {
  const result = task.result || { instruments: [], duration: 0 };
  const instruments = result.instruments || [];
  const colours = instruments.map((_, i) => colourOf(i));
  const notes = instruments.reduce((n, inst) => n + (inst.notes || []).length, 0);
  const section = $("result");
  section.hidden = false;
  section.dataset.taskId = task.id;
  const bits = [
    task.filename || "audio",
    `${instruments.length} instrument${instruments.length === 1 ? "" : "s"}`,
    `${notes} note${notes === 1 ? "" : "s"}`,
    formatTime(result.duration),
  ];
  if (result.tempo) bits.push(`${Math.round(result.tempo)} BPM`);
  if (task.stem) bits.push(`stem: ${STEM_TEXT[task.stem] || task.stem}`);
  $("result-summary").textContent = bits.join(" · ");
  $("announce").textContent = `Transcription ready: ${bits.slice(1, 3).join(", ")}.`;

  player.load(result);
  roll.setData(result, colours);
  renderInstruments(instruments, colours);
  renderDownloads(task);
  renderSnippets(task);
  score.reset(task);
  if (state.view === "score") score.show(task);
  loadOriginal(task);
  updateClock();
  renderPlayState();
}

function renderInstruments(instruments, colours) {
  const list = $("instruments");
  list.replaceChildren();
  if (!instruments.length) {
    list.append(el("li", { class: "muted" }, "No notes were found in this audio."));
    return;
  }
  instruments.forEach((inst, i) => {
    const count = (inst.notes || []).length;
    const id = `show-${i}`;
    const show = el("input", { type: "checkbox", id, checked: true });
    const item = el("li", { class: "instrument", dataset: { index: String(i), notes: String(count) } });
    show.addEventListener("change", () => {
      roll.setVisible(i, show.checked);
      item.classList.toggle("hidden-track", !show.checked);
    });
    const mute = el("button", { type: "button", class: "mute", "aria-pressed": "false" }, "Mute");
    mute.setAttribute("aria-label", `Mute ${inst.name}`);
    mute.addEventListener("click", () => {
      const muted = mute.getAttribute("aria-pressed") !== "true";
      mute.setAttribute("aria-pressed", String(muted));
      mute.textContent = muted ? "Muted" : "Mute";
      player.setMuted(i, muted);
    });
    const meta = inst.is_drum ? "drum kit" : `${inst.family || ""} · GM program ${Number(inst.program) + 1}`;
    item.append(
      el("span", { class: "swatch", style: { background: colours[i] }, "aria-hidden": "true" }),
      el("span", { class: "inst-name" }, inst.name, el("span", { class: "inst-meta" }, `${count} notes · ${meta}`)),
      el("label", { class: "inst-show", for: id }, show, "Show"),
      mute,
    );
    list.append(item);
  });
}

const DOWNLOADS = [
  ["dl-midi", "midi_url", ".mid"],
  ["dl-midi-q", "midi_quantized_url", ".quantized.mid"],
  ["dl-json", "json_url", ".json"],
  ["dl-musicxml", "musicxml_url", ".musicxml"],
  ["dl-pdf", "pdf_url", ".pdf"],
  ["score-dl-musicxml", "musicxml_url", ".musicxml"],
  ["score-dl-pdf", "pdf_url", ".pdf"],
];

function renderDownloads(task) {
  const base = baseName(task.filename);
  for (const [id, field, suffix] of DOWNLOADS) {
    const a = $(id);
    const url = task[field];
    if (url) {
      a.href = api.url(url);
      a.setAttribute("download", `${base}${suffix}`);
      a.removeAttribute("aria-disabled");
    } else {
      a.removeAttribute("href");
      a.setAttribute("aria-disabled", "true");
    }
  }
}

for (const [id] of DOWNLOADS) {
  $(id).addEventListener("click", async (e) => {
    const a = e.currentTarget;
    if (!a.href || a.dataset.busy) return;
    e.preventDefault();
    a.dataset.busy = "1";
    try {
      const blob = await api.fetchBlob(a.href);
      const link = el("a", { href: URL.createObjectURL(blob), download: a.getAttribute("download") });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
    } catch (err) {
      showError(err);
    } finally {
      delete a.dataset.busy;
    }
  });
}

function renderSnippets(task) {
  const box = $("snippets");
  box.replaceChildren();
  if (!task.audio_id) {
    box.append(el("p", { class: "muted small-text" }, "This job has no stored audio id, so there is nothing to call again."));
    return;
  }
  $("snippets-key").hidden = !api.key;
  for (const d of dialectRequests(location.origin, task.audio_id, { auth: Boolean(api.key) })) {
    const code = el("code", {}, d.command);
    const copy = el("button", { type: "button", class: "small copy", "aria-label": `Copy the ${d.title} request` }, "Copy");
    copy.addEventListener("click", () => copyText(d.command, copy));
    box.append(
      el("div", { class: "snippet", dataset: { dialect: d.id } },
        el("div", { class: "snippet-head" }, el("strong", {}, d.title, " ", el("span", {}, d.note)), copy),
        el("pre", { tabindex: "0" }, code)),
    );
  }
}

async function copyText(text, button) {
  let ok = false;
  try {
    await navigator.clipboard.writeText(text);
    ok = true;
  } catch {
    // Clipboard API needs a secure context (https or localhost); fall back to a selection copy.
    const area = el("textarea", { readonly: true, style: { position: "fixed", opacity: "0" } });
    area.value = text;
    document.body.append(area);
    area.select();
    ok = document.execCommand("copy");
    area.remove();
  }
  button.textContent = ok ? "Copied" : "Select and copy";
  button.classList.toggle("copied", ok);
  setTimeout(() => {
    button.textContent = "Copy";
    button.classList.remove("copied");
  }, 1800);
}

async function loadOriginal(task) {
  if (state.originalUrl) URL.revokeObjectURL(state.originalUrl);
  state.originalUrl = null;
  const radio = $("ab-original");
  const note = $("original-note");
  note.hidden = true;
  if (!task.audio_url) {
    player.setOriginal(null);
    radio.disabled = true;
    selectMode("midi");
    note.textContent = "The original audio is no longer stored on the server, so only the transcription can be played.";
    note.hidden = false;
    return;
  }
  radio.disabled = false;
  if (!api.key) {
    player.setOriginal(api.url(task.audio_url));
    return;
  }
  try {
    const blob = await api.fetchBlob(task.audio_url);
    if (state.task !== task) return;
    state.originalUrl = URL.createObjectURL(blob);
    player.setOriginal(state.originalUrl);
  } catch (err) {
    player.setOriginal(null);
    radio.disabled = true;
    selectMode("midi");
    note.textContent = `The original audio could not be loaded: ${describeError(err).headline}`;
    note.hidden = false;
  }
}

player.addEventListener("original", (e) => {
  if (e.detail.ready) return;
  $("ab-original").disabled = true;
  selectMode("midi");
  const note = $("original-note");
  note.textContent = "This browser cannot play the original file's format; only the transcription can be played.";
  note.hidden = false;
});

// ---------- piano roll / score views ----------

const VIEWS = { roll: ["tab-roll", "roll-view"], score: ["tab-score", "score-view"] };

function selectView(view, { focus = false } = {}) {
  state.view = view;
  for (const [name, [tab, panel]] of Object.entries(VIEWS)) {
    const on = name === view;
    $(tab).setAttribute("aria-selected", String(on));
    $(tab).tabIndex = on ? 0 : -1;
    $(panel).hidden = !on;
    if (on && focus) $(tab).focus();
  }
  if (view === "score") {
    player.pause();
    if (state.task && $("result").dataset.taskId === state.task.id) score.show(state.task);
  }
}

$("tab-roll").addEventListener("click", () => selectView("roll"));
$("tab-score").addEventListener("click", () => selectView("score"));
for (const id of ["tab-roll", "tab-score"]) {
  $(id).addEventListener("keydown", (e) => {
    if (!["ArrowLeft", "ArrowRight", "Home", "End"].includes(e.key)) return;
    e.preventDefault();
    e.stopPropagation();
    const next = e.key === "Home" ? "roll" : e.key === "End" ? "score" : state.view === "roll" ? "score" : "roll";
    selectView(next, { focus: true });
  });
}

// ---------- playback controls ----------

function selectMode(mode) {
  const radio = mode === "original" ? $("ab-original") : $("ab-midi");
  if (radio.disabled) return;
  radio.checked = true;
  player.setMode(mode);
}

for (const radio of document.querySelectorAll('input[name="ab"]')) {
  radio.addEventListener("change", () => radio.checked && player.setMode(radio.value));
}

function updateClock() {
  $("clock").textContent = `${formatTime(player.time())} / ${formatTime(player.duration)}`;
}

function renderPlayState() {
  const playing = player.playing;
  $("play-label").textContent = playing ? "Pause" : "Play";
  $("play-icon").setAttribute("d", playing ? "M7 5h4v14H7zm6 0h4v14h-4z" : "M8 5v14l11-7z");
}

function frame() {
  if (!player.playing) return;
  roll.setPlayhead(player.time(), { follow: true });
  updateClock();
  requestAnimationFrame(frame);
}

player.addEventListener("state", () => {
  renderPlayState();
  updateClock();
  roll.setPlayhead(player.time());
  if (player.playing) requestAnimationFrame(frame);
});
player.addEventListener("ended", () => {
  roll.setPlayhead(player.duration);
  updateClock();
});

$("play").addEventListener("click", () => player.toggle());
$("rewind").addEventListener("click", () => {
  player.seek(0);
  roll.setPlayhead(0, { follow: true });
  $("roll-scroll").scrollLeft = 0;
  updateClock();
});
$("volume").addEventListener("input", () => player.setVolume(Number($("volume").value)));
$("zoom").addEventListener("input", () => roll.setZoomFraction(Number($("zoom").value) / 100));
$("zoom-in").addEventListener("click", () => roll.zoomBy(1.5));
$("zoom-out").addEventListener("click", () => roll.zoomBy(1 / 1.5));
$("zoom-fit").addEventListener("click", () => roll.fit());

document.addEventListener("keydown", (e) => {
  if ($("result").hidden || e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  const typing = t instanceof HTMLElement && (t.isContentEditable || ["INPUT", "SELECT", "TEXTAREA"].includes(t.tagName));
  if (typing && !(t.type === "range" || t.type === "radio" || t.type === "checkbox")) return;
  if (e.key === " " && !(t instanceof HTMLButtonElement || t instanceof HTMLAnchorElement || t.tagName === "SUMMARY")) {
    e.preventDefault();
    player.toggle();
  } else if (e.key === "a" || e.key === "A") {
    selectMode("midi");
  } else if (e.key === "b" || e.key === "B") {
    selectMode("original");
  }
});

// ---------- recent jobs ----------

function highlightJob(id) {
  for (const b of $("jobs").querySelectorAll(".job")) b.classList.toggle("active", b.dataset.id === id);
}

function jobStateLabel(taskState) {
  return taskState === "succeeded" ? "done" : taskState;
}

/** Keep the followed job's line in the list in step with each poll. */
function updateJobState(task) {
  const chip = $("jobs").querySelector(`.job[data-id="${CSS.escape(task.id)}"] .job-state`);
  if (!chip || chip.textContent === jobStateLabel(task.state)) return;
  chip.textContent = jobStateLabel(task.state);
  chip.className = `job-state ${task.state}`;
}

let jobsTimer = null;

async function loadJobs() {
  clearTimeout(jobsTimer);
  const note = $("jobs-note");
  let page;
  try {
    page = await api.listTranscriptions(20);
  } catch (err) {
    $("jobs").replaceChildren();
    note.textContent = describeError(err).headline;
    note.hidden = false;
    return;
  }
  const items = (page && page.items) || [];
  note.textContent = "No jobs yet. Your transcriptions will be listed here.";
  note.hidden = items.length > 0;
  $("jobs").replaceChildren(
    ...items.map((task) => {
      const meta = [STEM_TEXT[task.stem] || task.stem, formatAgo(task.created_at)];
      if (task.result && Array.isArray(task.result.instruments)) {
        const n = task.result.instruments.reduce((s, i) => s + (i.notes || []).length, 0);
        meta.push(`${n} notes`);
      }
      const label = jobStateLabel(task.state);
      const button = el(
        "button",
        { type: "button", class: "job", dataset: { id: task.id } },
        el("span", { class: "job-name" }, task.filename || "audio from a link"),
        el("span", { class: `job-state ${task.state}` }, label),
        el("span", { class: "job-meta" }, meta.filter(Boolean).join(" · ")),
      );
      button.addEventListener("click", () => openJob(task.id));
      return el("li", {}, button);
    }),
  );
  if (state.task) highlightJob(state.task.id);
  // Jobs still running elsewhere (another tab, the API) are looked at again in a while.
  if (items.some((t) => !TERMINAL.has(t.state) && t.id !== (state.pollTimer && state.task && state.task.id))) {
    jobsTimer = setTimeout(loadJobs, 5000);
  }
}

$("jobs-refresh").addEventListener("click", loadJobs);

// ---------- start ----------

renderKeyState();
loadJobs();
loadDrumClasses();
{
  const m = /^#job=(.+)$/.exec(location.hash);
  if (m) openJob(decodeURIComponent(m[1]), { scroll: false });
}

// For people poking around in the console, and for the browser tests.
window.stemscribe = { api, player, roll, score, state, selectView };
