// A token's usage panel (Settings → API Tokens → Usage): requests by outcome and audio
// minutes over time, drawn here as inline SVG (no chart library, nothing from a CDN), the
// addresses it was used from, where it may be used from and what is left of its budget.
// Also hashing a pasted token in the browser for the audit search, so the token itself
// never leaves the page.

import { h, api, dialog } from "./app.js";

const SVG = "http://www.w3.org/2000/svg";
const OUTCOMES = ["ok", "expired", "revoked", "scope_denied", "ip_denied", "rate_limited", "quota_exceeded"];
const RANGES = [
  ["minute", "Last hour, by minute", 60, 60_000],
  ["hour", "Last day, by hour", 24, 3_600_000],
  ["day", "Last 30 days, by day", 30, 86_400_000],
];

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function usagePanel(token) {
  const range = h("select", { name: "range", "aria-label": "Period" },
    RANGES.map(([value, label]) => h("option", { value, selected: value === "hour" }, label)));
  const body = h("div", { class: "usage" }, h("p", { class: "muted" }, "Loading…"));
  const rules = [];
  if (token.allowed_cidrs?.length) rules.push(`Only from ${token.allowed_cidrs.join(", ")}`);
  if (token.denied_cidrs?.length) rules.push(`never from ${token.denied_cidrs.join(", ")}`);
  const budget = token.audio_quota_minutes
    ? `Audio budget: ${Math.floor((token.audio_quota_remaining_seconds ?? 0) / 60)} of ${token.audio_quota_minutes} min left (${token.audio_quota_refill})`
    : null;
  dialog(`Usage of “${token.name}”`, h("div", {},
    h("div", { class: "filters" }, range),
    rules.length ? h("p", { class: "muted small" }, rules.join("; ")) : null,
    budget ? h("p", { class: "muted small", "data-budget": "" }, budget) : null,
    body));
  const load = async () => {
    const [granularity, , periods, step] = RANGES.find(([value]) => value === range.value);
    try {
      const from = new Date(Date.now() - periods * step).toISOString();
      const query = new URLSearchParams({ granularity, from });
      const usage = await api("GET", `/api/tokens/${token.id}/usage?${query}`);
      body.replaceChildren(chart(usage, periods, step), totals(usage.totals), addresses(usage.addresses));
    } catch (err) {
      body.replaceChildren(h("p", { class: "error" }, err.message));
    }
  };
  range.addEventListener("change", load);
  load();
}

/// One stacked bar of requests per period (coloured by outcome) and a line of audio minutes.
function chart(usage, periods, step) {
  const width = 640, height = 180, left = 36, bottom = 22, top = 8;
  const end = Date.parse(usage.to);
  const first = Math.floor((end - periods * step) / step) * step + step;
  const byStart = new Map(usage.series.map((p) => [Math.floor(Date.parse(p.at) / step) * step, p]));
  const slots = Array.from({ length: periods }, (_, i) => byStart.get(first + i * step) ?? null);
  const requests = (p) => OUTCOMES.reduce((n, o) => n + (p?.[o] ?? 0), 0);
  const minutes = (p) => ((p?.audio_seconds ?? 0) + (p?.stream_seconds ?? 0)) / 60;
  const maxRequests = Math.max(1, ...slots.map(requests));
  const maxMinutes = Math.max(0.001, ...slots.map(minutes));
  const plotH = height - bottom - top;
  const barW = (width - left) / periods;
  const bars = [];
  slots.forEach((p, i) => {
    let y = height - bottom;
    for (const outcome of OUTCOMES) {
      const n = p?.[outcome] ?? 0;
      if (!n) continue;
      const barH = (n / maxRequests) * plotH;
      y -= barH;
      bars.push(s("rect", { x: (left + i * barW + 1).toFixed(1), y: y.toFixed(1), width: Math.max(1, barW - 2).toFixed(1),
        height: barH.toFixed(1), class: `bar bar-${outcome}`, "data-outcome": outcome },
        s("title", {}, `${n} ${outcome.replace("_", " ")}`)));
    }
  });
  const points = slots.map((p, i) => `${(left + (i + 0.5) * barW).toFixed(1)},${(height - bottom - (minutes(p) / maxMinutes) * plotH).toFixed(1)}`);
  const total = slots.reduce((n, p) => n + requests(p), 0);
  const audio = slots.reduce((n, p) => n + minutes(p), 0);
  const label = `${total} request${total === 1 ? "" : "s"} and ${audio.toFixed(1)} audio minutes in this period`;
  return h("figure", { class: "chart" },
    s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, class: "usage-chart" },
      s("title", {}, label),
      s("line", { x1: left, y1: height - bottom, x2: width, y2: height - bottom, class: "axis" }),
      s("text", { x: left - 4, y: top + 10, class: "tick", "text-anchor": "end" }, String(maxRequests)),
      s("text", { x: left - 4, y: height - bottom, class: "tick", "text-anchor": "end" }, "0"),
      s("text", { x: left, y: height - 6, class: "tick" }, new Date(first).toLocaleString()),
      s("text", { x: width, y: height - 6, class: "tick", "text-anchor": "end" }, "now"),
      bars,
      audio > 0 ? s("polyline", { points: points.join(" "), class: "audio-line" }) : null),
    h("figcaption", { class: "legend" },
      OUTCOMES.map((o) => h("span", { class: `key key-${o}` }, o.replace("_", " "))),
      h("span", { class: "key key-audio" }, "audio minutes")));
}

function totals(t) {
  const cells = OUTCOMES.filter((o) => t[o]).map((o) => h("li", {}, h("strong", {}, String(t[o])), ` ${o.replace("_", " ")}`));
  cells.push(h("li", {}, h("strong", {}, ((t.audio_seconds + t.stream_seconds) / 60).toFixed(1)), " audio minutes"));
  return h("ul", { class: "totals" }, cells);
}

const stampFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const stamp = (value) => stampFormat.format(new Date(value));

function addresses(list) {
  if (!list.length) return h("p", { class: "muted" }, "Not used from anywhere yet.");
  return h("table", { class: "table addresses" },
    h("caption", {}, "Where it was used from"),
    h("thead", {}, h("tr", {}, ["Address", "First seen", "Last seen", "Client"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, list.map((a) => h("tr", {},
      h("td", {}, h("code", {}, a.ip)),
      h("td", {}, stamp(a.first_seen)),
      h("td", {}, stamp(a.last_seen)),
      h("td", { class: "muted small" }, a.user_agent ?? "")))));
}

/// The SHA-256 (hex) of `text`, as the audit log's `hashed_token` holds it. Web Crypto
/// where the page has it (HTTPS, localhost); this small implementation elsewhere.
export async function sha256Hex(text) {
  const bytes = new TextEncoder().encode(text);
  if (globalThis.crypto?.subtle) {
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
  }
  return sha256Fallback(bytes);
}

function sha256Fallback(bytes) {
  const k = [];
  const primes = [];
  for (let n = 2; primes.length < 64; n++) if (primes.every((p) => n % p)) primes.push(n);
  const frac = (x) => ((x - Math.floor(x)) * 2 ** 32) >>> 0;
  for (const p of primes) k.push(frac(Math.cbrt(p)));
  const hash = primes.slice(0, 8).map((p) => frac(Math.sqrt(p)));
  const length = bytes.length;
  const padded = new Uint8Array(((length + 9 + 63) >> 6) << 6);
  padded.set(bytes);
  padded[length] = 0x80;
  new DataView(padded.buffer).setUint32(padded.length - 4, length * 8);
  new DataView(padded.buffer).setUint32(padded.length - 8, Math.floor(length / 2 ** 29));
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  const w = new Uint32Array(64);
  for (let off = 0; off < padded.length; off += 64) {
    const view = new DataView(padded.buffer, off, 64);
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(i * 4);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) >>> 0;
    }
    let [a, b, c, d, e, f, g, hh] = hash;
    for (let i = 0; i < 64; i++) {
      const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i]) >>> 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      [hh, g, f, e, d, c, b, a] = [g, f, e, (d + t1) >>> 0, c, b, a, (t1 + t2) >>> 0];
    }
    [a, b, c, d, e, f, g, hh].forEach((v, i) => { hash[i] = (hash[i] + v) >>> 0; });
  }
  return hash.map((v) => v.toString(16).padStart(8, "0")).join("");
}
