// The Score view: the engraved pages of the current result (SVG from the server), fetched once per job.

import { describeError } from "./format.js";

export class ScoreView {
  /** `api` is the page's Api; `status` and `pages` are the view's status line and page container. */
  constructor(api, status, pages) {
    this.api = api;
    this.status = status;
    this.pages = pages;
    this.taskId = null;
    this.loading = null;
    this.urls = [];
  }

  /** Forget the pages of the previous result (they are fetched again when the view opens). */
  reset(task) {
    if (task && task.id === this.taskId) return;
    for (const url of this.urls) URL.revokeObjectURL(url);
    this.urls = [];
    this.taskId = task ? task.id : null;
    this.loading = null;
    this.pages.replaceChildren();
    this.pages.dataset.pages = "0";
    delete this.pages.dataset.state;
    this.status.textContent = "The score is engraved when you open this view.";
  }

  /** Show the pages of `task`, engraving them on the server the first time (a long song takes a while). */
  show(task) {
    this.reset(task);
    if (!this.loading) this.loading = this.#load(task);
    return this.loading;
  }

  async #load(task) {
    if (!task.score_url) {
      this.#fail("This server does not offer sheet music for this job.");
      return;
    }
    this.pages.dataset.state = "loading";
    this.status.textContent = "Engraving the score…";
    let index;
    try {
      index = await this.api.request("GET", task.score_url);
      if (this.taskId !== task.id) return;
      const images = [];
      for (const [i, path] of index.page_urls.entries()) {
        const blob = await this.api.fetchBlob(path);
        if (this.taskId !== task.id) return;
        const url = URL.createObjectURL(blob);
        this.urls.push(url);
        images.push(
          Object.assign(document.createElement("img"), {
            src: url,
            alt: `Page ${i + 1} of ${index.pages} of the score`,
            className: "score-page",
            decoding: "async",
          }),
        );
      }
      this.pages.replaceChildren(...images);
    } catch (err) {
      if (this.taskId !== task.id) return;
      const { headline, detail } = describeError(err);
      this.#fail(detail ? `${headline} ${detail}` : headline);
      this.loading = null; // the next opening tries again
      return;
    }
    this.pages.dataset.pages = String(index.pages);
    this.pages.dataset.state = "ready";
    const bits = [index.time_signature, index.key, `${index.pages} page${index.pages === 1 ? "" : "s"}`];
    this.status.textContent = bits.filter(Boolean).join(" · ");
  }

  #fail(message) {
    this.pages.dataset.state = "failed";
    this.pages.replaceChildren();
    this.status.textContent = message;
  }
}
