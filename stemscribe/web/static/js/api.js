// Client of stemscribe's native API (/v1), relative to the page so a path prefix keeps working.

const KEY_STORAGE = "stemscribe.apiKey";

/** An API failure, with a message a musician can read. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

export function loadKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

export function saveKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    /* storage disabled: the key lives for this page only */
  }
}

/** Pull `{code, message}` out of whatever error body the server sent. */
export function parseErrorBody(status, body) {
  let code = `http_${status}`;
  let message = "";
  if (body && typeof body === "object") {
    const err = body.error && typeof body.error === "object" ? body.error : body;
    if (typeof err.code === "string") code = err.code;
    if (typeof err.message === "string") message = err.message;
    else if (typeof err.msg === "string") message = err.msg;
    else if (typeof body.detail === "string") message = body.detail;
    else if (Array.isArray(body.detail)) {
      message = body.detail
        .map((d) => `${(d.loc || []).filter((x) => x !== "body").join(".")}: ${d.msg}`)
        .join("; ");
      code = "invalid_request";
    }
  } else if (typeof body === "string") {
    message = body.trim().slice(0, 300);
  }
  return { code, message };
}

export class Api {
  constructor(base = "") {
    this.base = base;
    this.key = loadKey();
  }

  setKey(key) {
    this.key = key.trim();
    saveKey(this.key);
  }

  url(path) {
    // Server URLs are absolute paths ("/v1/..."); resolve them against the page's origin.
    return new URL(path, document.baseURI).href;
  }

  headers(extra = {}) {
    const h = { Accept: "application/json", ...extra };
    if (this.key) h.Authorization = `Bearer ${this.key}`;
    return h;
  }

  async request(method, path, { json, form } = {}) {
    const init = { method, headers: this.headers(), cache: "no-store" };
    if (json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(json);
    } else if (form !== undefined) {
      init.body = form;
    }
    let response;
    try {
      response = await fetch(this.url(path), init);
    } catch {
      throw new ApiError(0, "network", "");
    }
    return this.#read(response);
  }

  async #read(response) {
    const type = response.headers.get("content-type") || "";
    const body = type.includes("json") ? await response.json().catch(() => null) : await response.text();
    if (!response.ok) {
      const { code, message } = parseErrorBody(response.status, body);
      throw new ApiError(response.status, code, message);
    }
    return body;
  }

  /** POST /v1/uploads with upload progress (`onProgress(fraction)`); resolves to the upload object. */
  upload(file, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", this.url("v1/uploads"));
      for (const [k, v] of Object.entries(this.headers())) xhr.setRequestHeader(k, v);
      xhr.responseType = "text";
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total);
      };
      xhr.onerror = () => reject(new ApiError(0, "network", ""));
      xhr.onload = () => {
        let body = xhr.responseText;
        try {
          body = JSON.parse(body);
        } catch {
          /* not JSON: keep the text */
        }
        if (xhr.status >= 200 && xhr.status < 300) resolve(body);
        else {
          const { code, message } = parseErrorBody(xhr.status, body);
          reject(new ApiError(xhr.status, code, message));
        }
      };
      const form = new FormData();
      form.append("file", file, file.name);
      xhr.send(form);
    });
  }

  createTranscription(body) {
    return this.request("POST", "v1/transcriptions", { json: body });
  }

  getTranscription(id) {
    return this.request("GET", `v1/transcriptions/${encodeURIComponent(id)}`);
  }

  listTranscriptions(limit = 20) {
    return this.request("GET", `v1/transcriptions?limit=${limit}`);
  }

  /** GET a file (MIDI, JSON, audio) with the key attached; resolves to a Blob. */
  async fetchBlob(path) {
    let response;
    try {
      response = await fetch(this.url(path), { headers: this.headers({ Accept: "*/*" }), cache: "no-store" });
    } catch {
      throw new ApiError(0, "network", "");
    }
    if (!response.ok) {
      const type = response.headers.get("content-type") || "";
      const body = type.includes("json") ? await response.json().catch(() => null) : await response.text();
      const { code, message } = parseErrorBody(response.status, body);
      throw new ApiError(response.status, code, message);
    }
    return response.blob();
  }
}
