// The live page (#/live): a transcript while you speak. Start mints a temporary realtime
// key (10 minutes, the chosen project) with the session cookie, so the page never holds a
// long-lived secret, and opens Speechmatics' real-time protocol at /v2 with it. The
// microphone runs through an AudioWorklet (live-worklet.js) as ~100 ms frames of f32
// samples; partials show provisional, finals accumulate with their start times. Stop ends
// the stream; the captured audio can then be saved as a recording (a 16-bit WAV uploaded
// to the same project), which is transcribed and summarised like any upload.

import { h, api, shell, main, me, field, errorLine, showError, clock, toast, onLeave } from "./app.js";

const KEY_TTL_SECONDS = 600;
const stamp = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export async function liveView() {
  shell("live");
  const project = h("select", { name: "project", id: "live-project" });
  const start = h("button", { type: "button", class: "primary" }, "Start");
  const stop = h("button", { type: "button", class: "secondary", disabled: true }, "Stop");
  const status = h("span", { class: "muted", role: "status" });
  const error = errorLine();
  const finals = h("div", { class: "live-finals" });
  const partial = h("p", { class: "partial", hidden: true });
  const empty = h("p", { class: "muted" }, "Press Start and speak: the words appear here as they are recognised.");
  const transcript = h("div", { class: "live-transcript", "aria-live": "polite" }, empty, finals, partial);
  const title = h("input", { name: "title", maxlength: "200", id: "live-title" });
  const saved = h("p", { role: "status" });
  const save = h("button", { type: "button", class: "primary" }, "Save as recording");
  const saveArea = h("section", { class: "card", hidden: true, "aria-labelledby": "live-save" },
    h("h2", { id: "live-save" }, "Keep it"),
    h("p", { class: "muted" }, "Save the audio as a recording in the project: it is transcribed again in full and summarised."),
    field("Title", title), h("div", { class: "actions start" }, save), saved);
  const unusable = !window.isSecureContext || !navigator.mediaDevices?.getUserMedia || !window.AudioWorkletNode
    ? "This browser gives the page no microphone here: open hark over HTTPS (or on localhost)."
    : me.role === "viewer" ? "Viewers can read in the web UI but cannot stream audio." : null;
  start.disabled = Boolean(unusable);
  main.append(
    h("div", { class: "page-head" }, h("h1", {}, "Live transcription")),
    h("p", { class: "notice", hidden: !unusable }, unusable ?? ""),
    h("div", { class: "filters" }, field("Project", project),
      h("div", { class: "live-controls" }, start, stop, status)),
    error,
    h("section", { class: "card", "aria-labelledby": "live-t" }, h("h2", { id: "live-t" }, "Transcript"), transcript),
    saveArea);

  api("GET", "/api/projects").then(({ projects }) => {
    for (const p of projects) project.append(h("option", { value: String(p.id) }, p.name));
  }).catch((err) => showError(error, err));

  let session = null;
  onLeave(() => session?.close());

  start.addEventListener("click", async () => {
    session?.close();
    error.hidden = true;
    saveArea.hidden = true;
    saved.replaceChildren();
    finals.replaceChildren();
    partial.hidden = true;
    empty.hidden = true;
    start.disabled = true;
    project.disabled = true;
    session = new LiveSession(Number(project.value), {
      listening: () => { stop.disabled = false; },
      status: (text) => { status.textContent = text; },
      partial: (text) => { partial.textContent = text; partial.hidden = !text; },
      final: (meta, breakBefore) => addFinal(finals, meta, breakBefore),
      scrolled: () => { transcript.scrollTop = transcript.scrollHeight; },
      failed: (message) => showError(error, new Error(message)),
      ended: (current) => {
        stop.disabled = true;
        start.disabled = false;
        project.disabled = false;
        partial.hidden = true;
        if (current.samples() > 0 && current === session) {
          title.value = `Live ${stamp.format(current.startedAt)}`;
          save.disabled = false;
          saveArea.hidden = false;
        }
      },
    });
    session.start();
  });

  stop.addEventListener("click", () => {
    stop.disabled = true;
    session?.finish();
  });

  save.addEventListener("click", async () => {
    const current = session;
    save.disabled = true;
    saved.textContent = "Saving…";
    const body = new FormData();
    body.append("file", encodeWav(current.chunks, current.rate), "live.wav");
    body.append("title", title.value.trim() || "Live transcription");
    body.append("project_id", String(current.projectId));
    body.append("language", "en");
    try {
      const res = await fetch("/api/recordings", { method: "POST", body, credentials: "same-origin" });
      const data = await res.json().catch(() => null);
      if (res.status !== 201) throw new Error(data?.error?.message || `Saving failed (${res.status}).`);
      current.chunks = [];
      saved.replaceChildren("Saved: ", h("a", { href: `#/recordings/${data.id}` }, data.title),
        " — transcribing now.");
    } catch (err) {
      save.disabled = false;
      saved.textContent = err.message;
    }
  });
}

/** One Start → Stop: the key, the socket, the microphone and the captured samples. */
class LiveSession {
  constructor(projectId, on) {
    this.projectId = projectId;
    this.on = on;
    this.chunks = [];
    this.frames = 0;
    this.rate = 0;
    this.state = "starting";
    this.startedAt = new Date();
  }

  samples() {
    return this.chunks.reduce((n, c) => n + c.length, 0);
  }

  async start() {
    const { on } = this;
    try {
      on.status("Asking for the microphone…");
      this.media = await navigator.mediaDevices.getUserMedia({ audio: true });
      this.context = new AudioContext();
      this.rate = this.context.sampleRate;
      await this.context.audioWorklet.addModule("/assets/live-worklet.js");
      if (this.state !== "starting") return this.release();
      on.status("Connecting…");
      const key = await api("POST", "/v1/api_keys?type=rt", { ttl: KEY_TTL_SECONDS, project_id: this.projectId });
      this.keyId = key.apikey_id;
      if (this.state !== "starting") {
        this.revokeKey();
        return this.release();
      }
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      this.socket = new WebSocket(`${scheme}://${location.host}/v2?jwt=${encodeURIComponent(key.key_value)}`);
    } catch (err) {
      this.release();
      const denied = err?.name === "NotAllowedError" || err?.name === "NotFoundError";
      return this.end(denied ? "No microphone: allow this page to use one and try again." : err.message);
    }
    this.socket.binaryType = "arraybuffer";
    this.socket.addEventListener("open", () => this.send({
      message: "StartRecognition",
      audio_format: { type: "raw", encoding: "pcm_f32le", sample_rate: this.rate },
      transcription_config: { language: "en", enable_partials: true, max_delay: 2 },
    }));
    this.socket.addEventListener("message", (event) => {
      if (typeof event.data === "string") this.receive(JSON.parse(event.data));
    });
    this.socket.addEventListener("close", (event) => {
      if (this.state === "done" || this.state === "failed") return;
      this.end(this.state === "starting" && !this.opened
        ? "Could not open the live connection to the server."
        : `The connection closed before the transcript was complete (code ${event.code}).`);
    });
    this.socket.addEventListener("open", () => { this.opened = true; });
  }

  send(message) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  receive(m) {
    const { on } = this;
    switch (m.message) {
      case "RecognitionStarted":
        this.listen();
        break;
      case "AddPartialTranscript":
        on.partial(m.metadata.transcript.trim());
        on.scrolled();
        break;
      case "AddTranscript":
        on.final(m.metadata, this.utteranceEnded);
        this.utteranceEnded = false;
        on.scrolled();
        break;
      case "EndOfUtterance":
        this.utteranceEnded = true;
        break;
      case "EndOfTranscript":
        this.end();
        break;
      case "Warning":
        toast(m.reason);
        break;
      case "Error":
        this.end(`${m.reason} (${m.type})`);
        break;
      default:
        break;
    }
  }

  listen() {
    const { context, on } = this;
    this.state = "listening";
    const source = context.createMediaStreamSource(this.media);
    this.node = new AudioWorkletNode(context, "hark-capture",
      { numberOfInputs: 1, numberOfOutputs: 1, channelCount: 1, channelCountMode: "explicit" });
    this.node.port.onmessage = ({ data }) => {
      if (this.state !== "listening") return;
      this.socket.send(data.buffer);
      this.frames += 1;
      this.chunks.push(toInt16(data));
    };
    source.connect(this.node);
    // Connected so the graph pulls it; it writes nothing, so nothing is heard.
    this.node.connect(context.destination);
    context.resume();
    on.listening();
    const tick = () => on.status(`Listening · ${clock((Date.now() - this.startedAt) / 1000)}`);
    this.startedAt = new Date();
    tick();
    this.timer = setInterval(tick, 1000);
  }

  /** Stop: the microphone is let go at once; the server finishes what it heard. */
  finish() {
    if (this.state !== "listening") return this.close();
    this.state = "finishing";
    this.release();
    this.on.status("Finishing the transcript…");
    this.send({ message: "EndOfStream", last_seq_no: this.frames });
    this.deadline = setTimeout(() => this.end("The server did not finish the transcript in time."), 30_000);
  }

  /** The end of a session, well (`EndOfTranscript`) or not (a reason to show). */
  end(failure) {
    if (this.state === "done" || this.state === "failed") return;
    this.state = failure ? "failed" : "done";
    this.release();
    clearTimeout(this.deadline);
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) this.socket.close(1000);
    this.revokeKey();
    this.on.status(failure ? "Stopped." : `Done · ${clock(this.samples() / (this.rate || 1))} heard.`);
    if (failure) this.on.failed(failure);
    this.on.ended(this);
  }

  /** Leaving the page: everything stops, nothing is kept. */
  close() {
    this.chunks = [];
    this.end();
  }

  /** The key was in a URL: it dies with the session rather than at its expiry. */
  revokeKey() {
    if (this.keyId) api("DELETE", `/api/tokens/${this.keyId}`).catch(() => {});
    this.keyId = null;
  }

  release() {
    clearInterval(this.timer);
    this.media?.getTracks().forEach((t) => t.stop());
    this.node?.port.close();
    this.node?.disconnect();
    if (this.context && this.context.state !== "closed") this.context.close().catch(() => {});
  }
}

/** A new `.final` line at a sentence end, a pause or an end of utterance; else appended. */
function addFinal(finals, meta, breakBefore) {
  const text = meta.transcript.trim();
  if (!text) return;
  const last = finals.lastElementChild;
  const lastText = last?.querySelector(".text");
  const pause = last ? meta.start_time - Number(last.dataset.end) > 2 : true;
  if (!last || breakBefore || pause || /[.?!]$/.test(lastText.textContent)) {
    finals.append(h("p", { class: "final", "data-end": String(meta.end_time) },
      h("span", { class: "stamp" }, clock(meta.start_time)), " ", h("span", { class: "text" }, text)));
  } else {
    lastText.textContent += /^[.,?!;:]/.test(text) ? text : ` ${text}`;
    last.dataset.end = String(meta.end_time);
  }
}

function toInt16(samples) {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    out[i] = Math.round(s < 0 ? s * 0x8000 : s * 0x7fff);
  }
  return out;
}

/** 16-bit mono PCM WAV (the samples are copied in the platform's order: little-endian everywhere browsers run). */
function encodeWav(chunks, rate) {
  const count = chunks.reduce((n, c) => n + c.length, 0);
  const buffer = new ArrayBuffer(44 + count * 2);
  const view = new DataView(buffer);
  const ascii = (at, text) => [...text].forEach((c, i) => view.setUint8(at + i, c.charCodeAt(0)));
  ascii(0, "RIFF");
  view.setUint32(4, 36 + count * 2, true);
  ascii(8, "WAVE");
  ascii(12, "fmt ");
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true);
  view.setUint16(22, 1, true);
  view.setUint32(24, rate, true);
  view.setUint32(28, rate * 2, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  ascii(36, "data");
  view.setUint32(40, count * 2, true);
  let at = 44;
  for (const c of chunks) {
    new Int16Array(buffer, at, c.length).set(c);
    at += c.length * 2;
  }
  return new Blob([buffer], { type: "audio/wav" });
}
