// hark's web UI: plain DOM, no framework, no inline script (the CSP forbids it). Every
// value from the server goes in through textContent or attributes, never as markup.
// The live page is its own module (live.js), using the helpers exported here.

import { liveView } from "./live.js";
import { webhooksView } from "./webhooks.js";
import { usagePanel, sha256Hex } from "./token-usage.js";

export const main = document.getElementById("main");
export let me = null;
let refreshTimer = null;
let leaving = null;

// ---------- small helpers ----------

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

class ApiFailure extends Error {
  constructor(status, body) {
    super(body?.error?.message || `request failed (${status})`);
    this.status = status;
    this.code = body?.error?.code;
  }
}

export async function api(method, path, body) {
  const options = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const res = await fetch(path, options);
  if (res.status === 204) return null;
  const data = res.headers.get("content-type")?.includes("json") ? await res.json() : null;
  if (!res.ok) {
    if (res.status === 401 && me && !path.startsWith("/api/auth/")) {
      me = null;
      go("#/login");
    }
    throw new ApiFailure(res.status, data);
  }
  return data;
}

export function toast(message) {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (el.hidden = true), 3500);
}

export function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export function when(value, fallback = "never") {
  return value ? dateFormat.format(new Date(value)) : fallback;
}

export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return hh ? `${hh}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

/** Previous/next links and "Page x of y · n things" for a listing at `route`. */
function fillPager(pager, route, params, p, noun, [back, forward]) {
  const link = (n, label, enabled) => {
    const next = new URLSearchParams(params);
    next.set("page", String(n));
    return enabled ? h("a", { href: `${route}?${next}`, class: "button secondary" }, label)
      : h("span", { class: "button secondary", "aria-disabled": "true" }, label);
  };
  pager.replaceChildren(link(p.page - 1, back, p.has_prev),
    h("span", { class: "muted" }, `Page ${p.page} of ${Math.max(1, p.total_pages)} · ${p.total} ${noun}${p.total === 1 ? "" : "s"}`),
    link(p.page + 1, forward, p.has_next));
}

function badge(status) {
  const text = status.toLowerCase();
  return h("span", { class: `badge badge-${text}` }, text);
}

export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2)}`;
  input.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), input, hint ? h("p", { class: "hint" }, hint) : null);
}

export function errorLine() {
  return h("p", { class: "error", role: "alert", hidden: true });
}

export function showError(el, err) {
  el.textContent = err.message;
  el.hidden = false;
}

/** A modal dialog (native <dialog>: focus trapping and Escape come with it). */
export function dialog(title, body, { onclose } = {}) {
  const d = h("dialog", { "aria-labelledby": "dialog-title" },
    h("div", { class: "dialog-head" },
      h("h2", { id: "dialog-title" }, title),
      h("button", { type: "button", class: "icon", "aria-label": "Close", onclick: () => d.close() }, "×")),
    body);
  d.addEventListener("close", () => {
    d.remove();
    onclose?.();
  });
  document.body.append(d);
  d.showModal();
  return d;
}

export function confirmDialog(title, message, action, danger = true) {
  return new Promise((resolve) => {
    let confirmed = false;
    const d = dialog(title, h("div", {},
      h("p", {}, message),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "secondary", onclick: () => d.close() }, "Cancel"),
        h("button", { type: "button", class: danger ? "danger" : "primary",
          onclick: () => { confirmed = true; d.close(); } }, action))),
      { onclose: () => resolve(confirmed) });
  });
}

// ---------- shell ----------

/** Runs `stop` when the next view replaces this one (the live page lets go of the microphone). */
export function onLeave(stop) {
  leaving = stop;
}

export function shell(section) {
  const stop = leaving;
  leaving = null;
  stop?.();
  document.getElementById("topbar").hidden = !me;
  document.getElementById("who").textContent = me ? `${me.username} · ${me.role}` : "";
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  clearInterval(refreshTimer);
  refreshTimer = null;
  main.replaceChildren();
}

document.getElementById("signout").addEventListener("click", async () => {
  await api("POST", "/api/auth/logout").catch(() => {});
  me = null;
  go("#/login");
});

// ---------- sign in / first run ----------

function signInView() {
  shell(null);
  const username = h("input", { name: "username", autocomplete: "username", required: true });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const error = errorLine();
  const form = h("form", { class: "card narrow", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in to hark"),
    field("Username", username),
    field("Password", password),
    error,
    h("button", { type: "submit", class: "primary wide" }, "Sign in"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    try {
      me = await api("POST", "/api/auth/login", { username: username.value, password: password.value });
      go("#/recordings");
    } catch (err) {
      showError(error, err.status === 401 ? new Error("Wrong username or password.") : err);
    }
  });
  main.append(h("div", { class: "center" }, form));
  username.focus();
}

function setupView() {
  shell(null);
  const username = h("input", { name: "username", autocomplete: "username", required: true, value: "admin" });
  const password = h("input", { name: "password", type: "password", autocomplete: "new-password", required: true, minlength: "8" });
  const again = h("input", { name: "confirm", type: "password", autocomplete: "new-password", required: true, minlength: "8" });
  const error = errorLine();
  const form = h("form", { class: "card narrow", "aria-labelledby": "setup-title" },
    h("h1", { id: "setup-title" }, "Welcome to hark"),
    h("p", { class: "muted" }, "No one has signed in here yet. Choose the first administrator's name and password."),
    field("Username", username),
    field("Password", password, "At least 8 characters."),
    field("Confirm password", again),
    error,
    h("button", { type: "submit", class: "primary wide" }, "Create administrator"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    if (password.value !== again.value) return showError(error, new Error("The passwords do not match."));
    try {
      me = await api("POST", "/api/setup", { username: username.value, password: password.value });
      go("#/recordings");
    } catch (err) {
      showError(error, err);
    }
  });
  main.append(h("div", { class: "center" }, form));
  password.focus();
}

// ---------- recordings ----------

const ACTIVE = new Set(["PENDING", "PROCESSING", "SUMMARIZING"]);

async function recordingsView(params) {
  shell("recordings");
  const q = params.get("q") || "";
  const tag = params.get("tag") || "";
  const page = Number(params.get("page") || "1");
  const search = h("input", { type: "search", name: "q", value: q, placeholder: "Search titles" });
  const tagSelect = h("select", { name: "tag" }, h("option", { value: "" }, "All tags"));
  const filters = h("form", { class: "filters", role: "search" },
    field("Search", search), field("Tag", tagSelect),
    h("button", { type: "submit", class: "secondary" }, "Apply"));
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    if (search.value.trim()) next.set("q", search.value.trim());
    if (tagSelect.value) next.set("tag", tagSelect.value);
    go(`#/recordings?${next}`);
  });
  tagSelect.addEventListener("change", () => filters.requestSubmit());

  const list = h("div", { class: "list", "aria-live": "polite" }, h("p", { class: "muted" }, "Loading…"));
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  main.append(
    h("div", { class: "page-head" }, h("h1", {}, "Recordings")),
    uploader(() => load()),
    filters, list, pager);

  api("GET", "/api/tags").then(({ tags }) => {
    for (const t of tags) tagSelect.append(h("option", { value: String(t.id), selected: String(t.id) === tag }, t.name));
  }).catch(() => {});

  async function load() {
    const query = new URLSearchParams({ page: String(page), per_page: "20" });
    if (q) query.set("q", q);
    if (tag) query.set("tag", tag);
    let data;
    try {
      data = await api("GET", `/api/recordings?${query}`);
    } catch (err) {
      list.replaceChildren(h("p", { class: "error" }, err.message));
      return;
    }
    if (!data.recordings.length) {
      list.replaceChildren(h("div", { class: "empty" },
        h("p", {}, q || tag ? "No recordings match." : "No recordings yet."),
        h("p", { class: "muted" }, q || tag ? "Try another search or tag." : "Upload an audio file above to get a transcript and a summary.")));
    } else {
      list.replaceChildren(h("table", { class: "table" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Title"), h("th", { scope: "col" }, "Status"),
          h("th", { scope: "col", class: "hide-narrow" }, "Length"), h("th", { scope: "col", class: "hide-narrow" }, "Tags"),
          h("th", { scope: "col" }, "Uploaded"))),
        h("tbody", {}, data.recordings.map((r) => h("tr", {},
          h("td", {}, h("a", { href: `#/recordings/${r.id}` }, r.title)),
          h("td", {}, badge(r.status)),
          h("td", { class: "hide-narrow" }, r.duration_seconds ? clock(r.duration_seconds) : "—"),
          h("td", { class: "hide-narrow" }, r.tags.map((t) => h("span", { class: "chip" }, t.name))),
          h("td", {}, when(r.created_at)))))));
    }
    fillPager(pager, "#/recordings", params, data.pagination, "recording", ["← Previous", "Next →"]);
    const busy = data.recordings.some((r) => ACTIVE.has(r.status));
    clearInterval(refreshTimer);
    refreshTimer = busy ? setInterval(load, 2000) : null;
  }
  load();
}

function uploader(done) {
  const input = h("input", { type: "file", accept: "audio/*,video/*,.m4a,.mp3,.wav,.flac,.ogg", class: "visually-hidden", id: "file" });
  const bar = h("progress", { max: "100", value: "0", hidden: true, "aria-label": "Upload progress" });
  const label = h("span", { class: "muted", role: "status" }, "");
  const zone = h("div", { class: "dropzone" },
    h("p", {}, h("strong", {}, "Drop an audio file here"), " or ",
      h("label", { for: "file", class: "button primary" }, "Choose a file")),
    h("p", { class: "hint" }, "WAV, MP3, FLAC, Ogg or M4A. It is transcribed and summarised on this server."),
    input, bar, label);
  const send = (file) => {
    if (!file) return;
    const body = new FormData();
    body.append("file", file);
    body.append("title", file.name.replace(/\.[^.]+$/, ""));
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/recordings");
    bar.hidden = false;
    bar.value = 0;
    label.textContent = `Uploading ${file.name}…`;
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) {
        bar.value = Math.round((e.loaded / e.total) * 100);
        label.textContent = `Uploading ${file.name}… ${bar.value}%`;
      }
    });
    xhr.addEventListener("load", () => {
      bar.hidden = true;
      if (xhr.status === 201) {
        label.textContent = `${file.name} uploaded; transcribing.`;
        done();
      } else {
        let message = `Upload failed (${xhr.status}).`;
        try { message = JSON.parse(xhr.responseText).error.message; } catch { /* not JSON */ }
        label.textContent = message;
      }
    });
    xhr.addEventListener("error", () => { bar.hidden = true; label.textContent = "Upload failed: the connection dropped."; });
    xhr.send(body);
  };
  input.addEventListener("change", () => send(input.files[0]));
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => { e.preventDefault(); zone.classList.remove("over"); send(e.dataTransfer.files[0]); });
  return zone;
}

async function recordingView(id) {
  shell("recordings");
  let recording;
  try {
    recording = await api("GET", `/api/recordings/${id}`);
  } catch (err) {
    main.append(h("p", { class: "error" }, err.status === 404 ? "No such recording." : err.message));
    return;
  }
  const audio = h("audio", { controls: true, preload: "metadata", src: `/api/recordings/${id}/audio` });
  const status = h("span", {}, badge(recording.status));
  const transcript = h("section", { class: "card", "aria-labelledby": "t-title" }, h("h2", { id: "t-title" }, "Transcript"));
  const summary = h("section", { class: "card", "aria-labelledby": "s-title" }, h("h2", { id: "s-title" }, "Summary"));
  const tags = h("section", { class: "card", "aria-labelledby": "g-title" }, h("h2", { id: "g-title" }, "Tags"));
  const downloads = h("div", { class: "downloads" }, ["txt", "srt", "vtt"].map((f) =>
    h("a", { class: "button secondary", href: `/api/recordings/${id}/transcript/${f}`, download: "" }, f.toUpperCase())));
  const remove = h("button", { type: "button", class: "danger" }, "Delete");
  remove.addEventListener("click", async () => {
    if (!(await confirmDialog("Delete recording?", `“${recording.title}”, its audio and its transcript are deleted for good.`, "Delete"))) return;
    try {
      await api("DELETE", `/api/recordings/${id}`);
      toast("Recording deleted.");
      go("#/recordings");
    } catch (err) { toast(err.message); }
  });
  main.append(
    h("p", {}, h("a", { href: "#/recordings" }, "← All recordings")),
    h("div", { class: "page-head" }, h("h1", {}, recording.title), status),
    h("p", { class: "muted" }, `${recording.original_filename} · uploaded ${timeFormat.format(new Date(recording.created_at))}`),
    audio,
    h("div", { class: "toolbar" }, downloads, remove),
    h("div", { class: "columns" }, transcript, h("div", {}, summary, tags)));

  const fill = async () => {
    recording = await api("GET", `/api/recordings/${id}`);
    status.replaceChildren(badge(recording.status));
    const t = await api("GET", `/api/recordings/${id}/transcript`);
    const body = recording.status === "FAILED"
      ? h("p", { class: "error" }, recording.error || "Transcription failed.")
      : t.segments.length
        ? h("ol", { class: "segments" }, t.segments.map((s) => h("li", {},
          h("button", { type: "button", class: "stamp", "aria-label": `Play from ${clock(s.start)}`,
            onclick: () => { audio.currentTime = s.start; audio.play().catch(() => {}); } }, clock(s.start)),
          h("span", {}, s.text.trim()))))
        : h("p", { class: "muted" }, ACTIVE.has(recording.status) ? `Transcribing… (${recording.status.toLowerCase()})` : "No speech was found.");
    transcript.replaceChildren(transcript.firstChild, body);
    const sm = await api("GET", `/api/recordings/${id}/summary`);
    summary.replaceChildren(summary.firstChild,
      sm.summary ? h("p", {}, sm.summary) : h("p", { class: "muted" }, ACTIVE.has(recording.status) ? "Waiting for the transcript…" : "No summary."));
    downloads.hidden = recording.status !== "COMPLETED";
    if (!ACTIVE.has(recording.status)) { clearInterval(refreshTimer); refreshTimer = null; }
  };
  const fillTags = async () => {
    const [{ tags: all }, current] = [await api("GET", "/api/tags"), await api("GET", `/api/recordings/${id}`)];
    const chips = h("ul", { class: "chips" }, current.tags.map((t) => h("li", { class: "chip" }, t.name,
      h("button", { type: "button", class: "icon", "aria-label": `Remove tag ${t.name}`, onclick: async () => {
        await api("DELETE", `/api/recordings/${id}/tags/${t.id}`).catch((e) => toast(e.message));
        fillTags();
      } }, "×"))));
    const name = h("input", { name: "tag", list: "tag-names", placeholder: "Add a tag", maxlength: "50" });
    const names = h("datalist", { id: "tag-names" }, all.map((t) => h("option", { value: t.name })));
    const add = h("form", { class: "inline" }, h("label", { for: "tag-input", class: "visually-hidden" }, "Tag name"), name, names,
      h("button", { type: "submit", class: "secondary" }, "Add"));
    name.id = "tag-input";
    add.addEventListener("submit", async (event) => {
      event.preventDefault();
      const wanted = name.value.trim();
      if (!wanted) return;
      try {
        const tag = all.find((t) => t.name.toLowerCase() === wanted.toLowerCase()) || (await api("POST", "/api/tags", { name: wanted }));
        await api("POST", `/api/recordings/${id}/tags`, { tag_id: tag.id });
        fillTags();
      } catch (err) { toast(err.message); }
    });
    tags.replaceChildren(tags.firstChild, chips, add);
  };
  await fill().catch((err) => toast(err.message));
  fillTags().catch(() => {});
  if (ACTIVE.has(recording.status)) refreshTimer = setInterval(() => fill().catch(() => {}), 2000);
}

// ---------- settings: API tokens ----------

const EXPIRY = [["never", "No expiration"], ["30d", "30 days"], ["90d", "90 days"], ["1y", "1 year"],
  ["2y", "2 years"], ["5y", "5 years"], ["custom", "Custom date…"]];
const SCOPES = [["read", "Read recordings and transcripts"], ["write", "Upload, tag and delete recordings"],
  ["batch", "Batch transcription API (/api/v3, /v1)"], ["realtime", "Realtime streaming"]];

async function tokensView() {
  shell("settings");
  const canCreate = me.role !== "viewer";
  const create = h("button", { type: "button", class: "primary", disabled: !canCreate }, "Create token");
  create.addEventListener("click", () => createTokenDialog(load));
  const list = h("div", { class: "list" }, h("p", { class: "muted" }, "Loading…"));
  const banners = h("div", { class: "banners" });
  main.append(
    h("div", { class: "page-head" }, h("h1", {}, "Account settings")),
    settingsTabs("tokens"),
    banners,
    h("div", { class: "section-head" },
      h("div", {}, h("h2", {}, "API Tokens"),
        h("p", { class: "muted" }, "Tokens let scripts and integrations use hark’s API as you. Treat them like passwords.")),
      create),
    h("p", { class: "notice", hidden: canCreate }, "Viewers can read in the web UI but cannot create or use API tokens."),
    list);

  async function load() {
    let tokens;
    try {
      ({ tokens } = await api("GET", "/api/tokens"));
    } catch (err) {
      list.replaceChildren(h("p", { class: "error" }, err.message));
      return;
    }
    if (!tokens.length) {
      list.replaceChildren(h("div", { class: "empty" }, h("p", {}, "No tokens yet."),
        h("p", { class: "muted" }, "Create one to call the API from scripts, the OpenAI SDK or automation tools.")));
      return;
    }
    const leaked = tokens.filter((t) => t.revoked_reason === "leaked");
    const expiring = tokens.filter((t) => t.status === "active" && t.expires_soon);
    banners.replaceChildren(
      ...leaked.map((t) => h("p", { class: "notice", role: "alert" },
        `“${t.name}” was reported found in public and revoked ${when(t.revoked_at)}. Create a new token and replace it wherever it was used.`)),
      expiring.length ? h("p", { class: "notice" },
        `${expiring.length === 1 ? `“${expiring[0].name}” expires` : `${expiring.length} tokens expire`} within 7 days: rotate or replace ${expiring.length === 1 ? "it" : "them"} in time.`) : "");
    list.replaceChildren(h("table", { class: "table tokens" },
      h("thead", {}, h("tr", {}, ["Name", "Type", "Status", "Created", "Last used", "Expires", "Token", ""].map((c) =>
        h("th", { scope: "col", class: ["Created", "Token"].includes(c) ? "hide-narrow" : null }, c)))),
      h("tbody", {}, tokens.map((t) => tokenRow(t, load)))));
  }
  load();
}

export function settingsTabs(current) {
  const tabs = [["tokens", "API Tokens"], ["webhooks", "Webhooks"]];
  if (me.role === "admin") tabs.push(["workspace", "Members & projects"], ["audit", "Audit log"]);
  return h("nav", { class: "tabs", "aria-label": "Settings" }, tabs.map(([key, label]) =>
    h("a", { href: `#/settings/${key}`, "aria-current": key === current ? "page" : null }, label)));
}

const ROLES = ["admin", "developer", "member", "viewer"];

async function workspaceView() {
  shell("settings");
  const members = h("div", { class: "list" }, h("p", { class: "muted" }, "Loading…"));
  const projects = h("div", { class: "list" }, h("p", { class: "muted" }, "Loading…"));
  const projectKeys = h("div", { class: "list" });
  const projectName = h("input", { name: "project", maxlength: "100", placeholder: "e.g. Call center", required: true });
  const projectError = errorLine();
  const addProject = h("form", { class: "inline" },
    h("label", { for: "new-project", class: "visually-hidden" }, "New project name"), projectName,
    h("button", { type: "submit", class: "secondary" }, "Add project"));
  projectName.id = "new-project";
  main.append(
    h("div", { class: "page-head" }, h("h1", {}, "Account settings")),
    settingsTabs("workspace"),
    h("div", { class: "section-head" }, h("div", {}, h("h2", {}, "Members"),
      h("p", { class: "muted" }, "Roles: admins manage everything; developers also make project keys; members make personal tokens; viewers only read in the web UI, and their tokens stop at once."))),
    members,
    h("div", { class: "section-head" }, h("div", {}, h("h2", {}, "Projects"),
      h("p", { class: "muted" }, "Every recording belongs to a project; project API keys reach only theirs."))),
    addProject, projectError, projects,
    h("div", { class: "section-head" }, h("div", {}, h("h2", {}, "Project API keys"),
      h("p", { class: "muted" }, "Every project's keys, whoever made them."))),
    projectKeys);

  const loadMembers = async () => {
    const data = await api("GET", "/api/manage/members");
    members.replaceChildren(h("table", { class: "table" },
      h("thead", {}, h("tr", {}, ["Name", "Role", "Joined", ""].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, data.members.map((m) => {
        const role = h("select", { "aria-label": `Role of ${m.username}` },
          ROLES.map((r) => h("option", { value: r, selected: r === m.role }, r)));
        role.addEventListener("change", async () => {
          try {
            await api("PATCH", `/api/manage/members/${m.id}`, { role: role.value });
            toast(`${m.username} is now ${role.value}.`);
          } catch (err) {
            toast(err.message);
            role.value = m.role;
          }
        });
        const remove = h("button", { type: "button", class: "danger small", onclick: async () => {
          if (!(await confirmDialog(`Remove ${m.username}?`, `${m.username} is signed out and every token they hold stops working now. Their recordings stay.`, "Remove"))) return;
          try {
            await api("DELETE", `/api/manage/members/${m.id}`);
            toast(`${m.username} was removed.`);
            loadMembers();
          } catch (err) { toast(err.message); }
        } }, "Remove");
        return h("tr", {}, h("td", {}, h("strong", {}, m.username)), h("td", {}, role), h("td", {}, when(m.created_at)),
          h("td", { class: "row-actions" }, m.id === me.id ? h("span", { class: "muted small" }, "you") : remove));
      }))));
  };
  const loadProjects = async () => {
    const data = await api("GET", "/api/manage/projects");
    const keyLists = await Promise.all(data.projects.map((p) => api("GET", `/api/manage/projects/${p.id}/keys`)));
    const keys = data.projects.flatMap((p, i) => keyLists[i].tokens.map((k) => ({ ...k, projectName: p.name, projectId: p.id })));
    projectKeys.replaceChildren(keys.length ? h("table", { class: "table" },
      h("thead", {}, h("tr", {}, ["Key", "Project", "Type", "Status", "Last used", "Expires", ""].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, keys.map((k) => h("tr", {},
        h("td", {}, h("strong", {}, k.name), h("br"), h("code", { class: "small" }, k.hint)),
        h("td", {}, k.projectName),
        h("td", {}, k.scopes.join(", ")),
        h("td", {}, h("span", { class: `badge badge-${k.status}` }, k.status)),
        h("td", {}, when(k.last_used_at)),
        h("td", {}, when(k.expires_at)),
        h("td", { class: "row-actions" }, k.status === "revoked" ? null : h("button", { type: "button", class: "danger small", onclick: async () => {
          if (!(await confirmDialog("Revoke key?", `“${k.name}” (${k.projectName}) stops working immediately.`, "Revoke"))) return;
          try {
            await api("DELETE", `/api/manage/projects/${k.projectId}/keys/${k.id}`);
            toast("Key revoked.");
            loadProjects();
          } catch (err) { toast(err.message); }
        } }, "Revoke")))))) : h("p", { class: "muted" }, "No project keys yet. Create one in API Tokens → Create token → Project API key."));
    projects.replaceChildren(h("table", { class: "table" },
      h("thead", {}, h("tr", {}, ["Project", "Id", "Created"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, data.projects.map((p) => h("tr", {}, h("td", {}, h("strong", {}, p.name)), h("td", {}, `#${p.id}`),
        // The default project comes with the install (stored time 0): no date to show.
        h("td", {}, new Date(p.created_at).getTime() > 0 ? when(p.created_at) : "with the install"))))));
  };
  addProject.addEventListener("submit", async (event) => {
    event.preventDefault();
    projectError.hidden = true;
    try {
      await api("POST", "/api/manage/projects", { name: projectName.value.trim() });
      projectName.value = "";
      loadProjects();
    } catch (err) { showError(projectError, err); }
  });
  loadMembers().catch((err) => members.replaceChildren(h("p", { class: "error" }, err.message)));
  loadProjects().catch((err) => projects.replaceChildren(h("p", { class: "error" }, err.message)));
}

const AUDIT_ACTIONS = ["token.created", "token.rotated", "token.revoked", "token.expired_use",
  "token.changed", "token.new_ip", "token.revoked_by_value", "token.expiring",
  "key.created", "key.revoked",
  "recording.created", "recording.deleted", "member.added", "member.role_changed", "member.removed", "project.created", "project.deleted"];

async function auditView(params) {
  shell("settings");
  const action = params.get("action") || "";
  const tokenHash = params.get("token_hash") || "";
  const page = Number(params.get("page") || "1");
  // A pasted token is hashed here; only its SHA-256 goes to the server.
  const search = h("input", { name: "token", type: "search", autocomplete: "off", placeholder: "hark_pat_… or its SHA-256",
    "aria-label": "Token to trace" });
  const trace = h("form", { class: "trace" }, field("Find what a token did", search,
    tokenHash ? `Showing events of the token with SHA-256 ${tokenHash.slice(0, 12)}…` : "Paste a leaked token: it is hashed in your browser, never sent."));
  trace.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = search.value.trim();
    search.value = "";
    if (!text) return go("#/settings/audit");
    const hash = /^[0-9a-fA-F]{64}$/.test(text) ? text.toLowerCase() : await sha256Hex(text);
    go(`#/settings/audit?token_hash=${hash}`);
  });
  const select = h("select", { name: "action" }, h("option", { value: "" }, "All actions"),
    AUDIT_ACTIONS.map((a) => h("option", { value: a, selected: a === action }, a)));
  select.addEventListener("change", () => go(select.value ? `#/settings/audit?action=${select.value}` : "#/settings/audit"));
  const list = h("div", { class: "list" }, h("p", { class: "muted" }, "Loading…"));
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  main.append(
    h("div", { class: "page-head" }, h("h1", {}, "Account settings")),
    settingsTabs("audit"),
    h("div", { class: "section-head" },
      h("div", {}, h("h2", {}, "Audit log"),
        h("p", { class: "muted" }, "Tokens and keys created, rotated, revoked or used after expiry; members added, re-roled or removed; projects and recordings added or deleted. Append-only; never holds a token.")),
      h("div", { class: "filters" }, field("Action", select))),
    trace, list, pager);
  const query = new URLSearchParams({ page: String(page), per_page: "25" });
  if (action) query.set("action", action);
  if (tokenHash) query.set("token_hash", tokenHash);
  let data;
  try {
    data = await api("GET", `/api/audit?${query}`);
  } catch (err) {
    list.replaceChildren(h("p", { class: "error" }, err.message));
    return;
  }
  list.replaceChildren(data.events.length ? h("table", { class: "table" },
    h("thead", {}, h("tr", {}, ["When", "Who", "Action", "Target", "From"].map((c) =>
      h("th", { scope: "col", class: c === "From" ? "hide-narrow" : null }, c)))),
    h("tbody", {}, data.events.map((e) => h("tr", {},
      h("td", {}, timeFormat.format(new Date(e.at))),
      h("td", {}, e.actor_username ?? "—", e.actor_token_id ? h("span", { class: "muted small" }, ` via token #${e.actor_token_id}`) : null),
      h("td", {}, h("code", {}, e.action)),
      h("td", {}, e.target),
      h("td", { class: "hide-narrow" }, e.ip ?? "", h("br"), h("span", { class: "muted small" }, e.user_agent ?? "")))))
  ) : h("div", { class: "empty" }, h("p", {}, "Nothing recorded yet.")));
  fillPager(pager, "#/settings/audit", params, data.pagination, "event", ["← Newer", "Older →"]);
}

function tokenRow(t, reload) {
  const marks = [];
  if (t.status === "active" && !t.last_used_at) marks.push(h("span", { class: "mark" }, "unused"));
  if (t.status === "active" && t.expires_soon) marks.push(h("span", { class: "mark warn" }, "expires soon"));
  if (t.revoked_reason === "leaked") marks.push(h("span", { class: "mark warn" }, "found in public"));
  if (t.allowed_cidrs?.length || t.denied_cidrs?.length) marks.push(h("span", { class: "mark" }, "IP-restricted"));
  const actions = h("td", { class: "row-actions" });
  actions.append(h("button", { type: "button", class: "secondary small", onclick: () => usagePanel(t) }, "Usage"));
  if (t.status !== "revoked") {
    actions.append(
      h("button", { type: "button", class: "secondary small", onclick: async () => {
        if (!(await confirmDialog("Rotate token?", `A new secret replaces “${t.name}”. The old one stops working now; update every place that uses it.`, "Rotate", false))) return;
        try {
          const created = await api("POST", `/api/tokens/${t.id}/rotate`, {});
          showTokenOnce(created, reload);
        } catch (err) { toast(err.message); }
      } }, "Rotate"),
      h("button", { type: "button", class: "danger small", onclick: async () => {
        if (!(await confirmDialog("Revoke token?", `“${t.name}” stops working immediately. This cannot be undone.`, "Revoke"))) return;
        try {
          await api("DELETE", `/api/tokens/${t.id}`);
          toast("Token revoked.");
          reload();
        } catch (err) { toast(err.message); }
      } }, "Revoke"));
  }
  return h("tr", { "data-token-id": String(t.id) },
    h("td", {}, h("strong", {}, t.name), " ", marks),
    h("td", {}, t.kind === "project" ? `project #${t.project_id} key` : t.kind, h("br"),
      h("span", { class: "muted small" }, t.scopes.length ? t.scopes.join(", ") : "management API")),
    h("td", {}, h("span", { class: `badge badge-${t.status}` }, t.status)),
    h("td", { class: "hide-narrow" }, when(t.created_at)),
    h("td", {}, when(t.last_used_at)),
    h("td", {}, when(t.expires_at)),
    h("td", { class: "hide-narrow" }, h("code", {}, t.hint)),
    actions);
}

function createTokenDialog(reload) {
  const name = h("input", { name: "name", required: true, maxlength: "100", placeholder: "e.g. n8n automation" });
  const expiry = h("select", { name: "expires" }, EXPIRY.map(([v, label]) => h("option", { value: v, selected: v === "90d" }, label)));
  const date = h("input", { type: "date", name: "date", hidden: true, "aria-label": "Expiry date" });
  expiry.addEventListener("change", () => { date.hidden = expiry.value !== "custom"; date.required = !date.hidden; });
  const scopes = h("fieldset", { class: "scopes" }, h("legend", {}, "Scopes"),
    SCOPES.map(([v, label]) => h("label", { class: "check" },
      h("input", { type: "checkbox", name: "scope", value: v, checked: v !== "realtime" }), ` ${v} `, h("span", { class: "muted small" }, `— ${label}`))));
  const kind = h("select", { name: "kind" },
    h("option", { value: "personal" }, "Personal access token — acts as you, limited by its scopes"),
    ["admin", "developer"].includes(me.role) ? h("option", { value: "project" }, "Project API key — one project, batch or realtime") : null,
    me.role === "admin" ? h("option", { value: "management" }, "Management token — members and projects only, never transcription") : null);
  const project = h("select", { name: "project" });
  const keyType = h("select", { name: "type" },
    h("option", { value: "batch" }, "Batch — upload audio, read sessions and documents"),
    h("option", { value: "realtime" }, "Realtime — streaming only"));
  const keyFields = h("div", { hidden: true }, field("Project", project), field("Key type", keyType));
  kind.addEventListener("change", () => {
    scopes.hidden = kind.value !== "personal";
    keyFields.hidden = kind.value !== "project";
    if (kind.value === "project" && !project.options.length) {
      api("GET", "/api/projects").then(({ projects }) => {
        for (const p of projects) project.append(h("option", { value: String(p.id) }, p.name));
      }).catch((err) => showError(error, err));
    }
  });
  const rate = h("input", { type: "number", name: "rate", min: "1", max: "1000000", inputmode: "numeric", placeholder: "default" });
  const networks = h("input", { name: "allowed", autocomplete: "off", placeholder: "anywhere, or e.g. 203.0.113.0/24, 2001:db8::/32" });
  const error = errorLine();
  const form = h("form", {},
    field("Name", name, "What will use it? You’ll see this name in the list."),
    field("Type", kind),
    keyFields,
    scopes,
    h("div", { class: "field" }, h("label", { for: "expires" }, "Expiration"), expiry, date),
    field("Requests a minute", rate, "Leave empty for the server’s default. Only admins can go above it."),
    field("Allowed networks", networks, "Comma-separated addresses or CIDR networks it may be used from. Empty: anywhere."),
    error,
    h("div", { class: "actions" },
      h("button", { type: "button", class: "secondary", onclick: () => d.close() }, "Cancel"),
      h("button", { type: "submit", class: "primary" }, "Create token")));
  expiry.id = "expires";
  const d = dialog("Create token", form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const chosen = [...form.querySelectorAll("input[name=scope]:checked")].map((c) => c.value);
    const personal = kind.value === "personal";
    if (personal && !chosen.length) return showError(error, new Error("Choose at least one scope."));
    const expires = expiry.value === "custom" ? date.value : expiry.value;
    const request = { name: name.value.trim(), expires, kind: kind.value };
    if (rate.value) request.requests_per_minute = Number(rate.value);
    const allowed = networks.value.split(",").map((n) => n.trim()).filter(Boolean);
    if (allowed.length) request.allowed_cidrs = allowed;
    if (personal) request.scopes = chosen;
    if (kind.value === "project") {
      request.project_id = Number(project.value);
      request.type = keyType.value;
    }
    try {
      const created = await api("POST", "/api/tokens", request);
      d.close();
      showTokenOnce(created, reload);
    } catch (err) { showError(error, err); }
  });
  name.focus();
}

function showTokenOnce(created, reload) {
  const origin = location.origin;
  const token = created.token;
  const copyButton = h("button", { type: "button", class: "primary", onclick: async () => {
    try {
      await navigator.clipboard.writeText(token);
      copyButton.textContent = "Copied";
    } catch {
      secret.focus();
      secret.select();
      copyButton.textContent = "Press Ctrl+C";
    }
  } }, "Copy");
  const secret = h("input", { class: "secret", readonly: true, value: token, "aria-label": "Your new token", "data-token": "" });
  const example = (title, text) => h("div", { class: "example" }, h("h3", {}, title), h("pre", {}, h("code", {}, text)));
  const body = h("div", {},
    h("p", { class: "warning", role: "alert" }, "Copy this token now. You won’t see it again: hark keeps only a hash of it."),
    h("div", { class: "secret-row" }, secret, copyButton),
    example("HTTP header", `Authorization: Bearer ${token}`),
    created.kind === "management"
      ? example("curl", `curl -H "Authorization: Bearer ${token}" ${origin}/api/manage/members`)
      : created.kind === "project" && created.scopes.includes("realtime")
      ? null
      : created.kind === "project"
      ? example("curl", `curl -H "Authorization: Bearer ${token}" \\\n  -F file=@meeting.wav ${origin}/api/v3/speech-to-text`)
      : [example("curl", `curl -H "Authorization: Bearer ${token}" \\\n  -F file=@meeting.wav ${origin}/api/recordings`),
        example("Python (OpenAI SDK)", `from openai import OpenAI\n\nclient = OpenAI(base_url="${origin}/v1", api_key="${token}")\nwith open("meeting.wav", "rb") as audio:\n    print(client.audio.transcriptions.create(model="whisper-1", file=audio).text)`)],
    h("div", { class: "actions" }, h("button", { type: "button", class: "primary", onclick: () => d.close() }, "I’ve saved it")));
  const d = dialog(`Token “${created.name}” created`, body, {
    onclose: () => { secret.value = ""; reload(); },
  });
  secret.select();
}

// ---------- routing ----------

async function route() {
  const [path, query = ""] = location.hash.slice(1).split("?");
  const params = new URLSearchParams(query);
  if (path === "/setup") return setupView();
  if (path === "/login" || !me) {
    try {
      if ((await api("GET", "/api/setup")).needed) return go("#/setup");
      me = await api("GET", "/api/auth/session");
    } catch {
      me = null;
    }
    if (!me) return signInView();
    if (path === "/login") return go("#/recordings");
  }
  const recording = path.match(/^\/recordings\/(\d+)$/);
  if (recording) return recordingView(recording[1]);
  if (path === "/settings/tokens" || path === "/settings") return tokensView();
  if (path === "/settings/webhooks") return webhooksView();
  if (path === "/settings/audit") return auditView(params);
  if (path === "/settings/workspace") return workspaceView();
  if (path === "/live") return liveView();
  return recordingsView(params);
}

window.addEventListener("hashchange", route);
route();
