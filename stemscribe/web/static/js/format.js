// Words, times and colours shown on the page.

/** One colour per instrument, readable on the roll's dark background (and distinct from each other). */
export const PALETTE = [
  "#4cc9f0", "#ffd166", "#f72585", "#06d6a0", "#ff8c42",
  "#b388ff", "#a7c957", "#ef476f", "#90e0ef", "#f4a261",
  "#e0e0e0", "#c77dff",
];

export function colourOf(index) {
  return PALETTE[index % PALETTE.length];
}

/** "1:05.3" from seconds. */
export function formatTime(seconds, { tenths = true } = {}) {
  const s = Math.max(0, Number(seconds) || 0);
  const m = Math.floor(s / 60);
  const rest = s - m * 60;
  const sec = tenths ? rest.toFixed(1).padStart(4, "0") : String(Math.floor(rest)).padStart(2, "0");
  return `${m}:${sec === "60.0" ? "59.9" : sec}`;
}

export function formatBytes(n) {
  if (!Number.isFinite(n)) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** "3 min ago" from an ISO time or epoch seconds. */
export function formatAgo(when, now = Date.now()) {
  if (when === null || when === undefined || when === "") return "";
  const t = typeof when === "number" ? (when < 1e12 ? when * 1000 : when) : Date.parse(when);
  if (!Number.isFinite(t)) return "";
  const s = Math.round((now - t) / 1000);
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(t).toLocaleDateString();
}

export const STAGE_TEXT = {
  upload: "Uploading",
  queued: "Waiting for a free worker",
  loading: "Reading the audio",
  separating: "Separating the instruments",
  transcribing: "Transcribing the notes",
  drums: "Transcribing the drums",
  assigning: "Naming the instruments",
  done: "Done",
};

export const STEM_TEXT = {
  auto: "auto",
  mix: "full song",
  vocals: "vocals",
  drums: "drums",
  bass: "bass",
  piano: "piano",
  guitar: "guitar",
  keys: "keys",
  strings: "strings",
  brass: "brass",
  winds: "woodwinds",
  synth: "synth",
  other: "other",
};

const CODE_TEXT = {
  network: "The server could not be reached. Is `stemscribe serve` still running?",
  bad_audio: "That file could not be read as audio.",
  not_audio: "That file does not look like audio.",
  empty_audio: "That audio file is empty or silent.",
  corrupt_audio: "That audio file is damaged and could not be decoded.",
  too_long: "That audio is longer than this server accepts.",
  too_large: "That file is larger than this server accepts.",
  unsupported_media_type: "That file type is not supported.",
  bad_request: "The server did not accept the request.",
  invalid_option: "One of the options is not valid.",
  invalid_request: "The request was not accepted.",
  no_token: "This server needs an API key. Open “API key” at the top, paste your key and try again.",
  invalid_token: "The API key was not accepted. Check it under “API key” at the top.",
  forbidden: "Your API key is not allowed to do this.",
  model_error: "The transcription model failed on this audio.",
  internal_error: "The server failed while transcribing this audio.",
  worker_died: "The worker running this job stopped several times; the job was given up.",
  api_error: "The server hit an internal error.",
  separation_unavailable: "Instrument separation is not installed on this server; choose what is in the audio instead of auto.",
  not_found: "That job or file no longer exists on the server.",
  expired: "This job has expired and its files were removed.",
  timeout: "The job took too long and was stopped.",
  too_many_requests: "Too many requests at once. Wait a moment and try again.",
  unavailable: "The server is busy or starting up. Try again in a moment.",
  score_unavailable: "Sheet music is not installed on this server (pip install 'stemscribe[score]').",
  score_failed: "The score of this result could not be engraved.",
};

// The server answers most refusals of the input as `bad_request`; its message tells which one it was.
const BAD_REQUEST_TEXT = [
  [/not usable as audio|not a recognised audio format/i, "That file could not be read as audio."],
  [/\bempty\b|0 bytes/i, "That audio file is empty."],
  [/refusing to contact|not allowed/i, "The server is not allowed to fetch that link."],
  [/could not fetch|cannot resolve|download/i, "The server could not fetch that link."],
];

const STATUS_TEXT = {
  400: "The server did not accept the request.",
  401: "This server needs an API key. Open “API key” at the top, paste your key and try again.",
  403: "Your API key is not allowed to do this.",
  404: "Not found on the server (it may have expired).",
  413: "That file is too large for this server.",
  415: "That file type is not supported.",
  422: "The request was not accepted.",
  429: "The server is busy with other jobs. Wait a moment and try again.",
  500: "The server hit an internal error.",
  502: "The server could not fetch that link.",
  503: "The server is busy or starting up. Try again in a moment.",
  504: "The server took too long to answer.",
};

/** A headline and a detail line for an error from the API or a failed task (`{code, message}`). */
export function describeError(err) {
  const status = err && typeof err.status === "number" ? err.status : undefined;
  const code = (err && err.code) || "";
  const message = (err && err.message) || "";
  let headline = code === "bad_request" ? BAD_REQUEST_TEXT.find(([re]) => re.test(message))?.[1] : undefined;
  headline = headline || CODE_TEXT[code];
  if (!headline && status === 401) headline = STATUS_TEXT[401];
  if (!headline && status !== undefined) headline = STATUS_TEXT[status];
  if (!headline) headline = "Something went wrong.";
  const detail = message && message !== headline ? message : "";
  return { headline, detail };
}
