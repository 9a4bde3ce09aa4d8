// End-to-end checks of hark's web UI in Debian's Chromium, driven by playwright-core.
// Run by crates/hark/tests/browser.rs against a real hark on loopback:
//   node ui.mjs tokens BASE_URL USERNAME PASSWORD AUDIO_FILE ARTIFACT_DIR
//   node ui.mjs setup  BASE_URL USERNAME PASSWORD - ARTIFACT_DIR
//   node ui.mjs inert  BASE_URL ADMIN PASSWORD '{"link","path","member"}' ARTIFACT_DIR
//   node ui.mjs live   BASE_URL USERNAME PASSWORD '{"clip","project","words"}' ARTIFACT_DIR
// Prints one JSON line with what the Rust side needs to check (e.g. the token it saw, so
// it can assert the server never logged it); exits non-zero on the first failed check.

import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import path from "node:path";

const [mode, base, username, password, audioFile, artifacts] = process.argv.slice(2);
const origin = new URL(base).origin;
mkdirSync(artifacts, { recursive: true });
// In live mode the microphone is a file (Chromium loops it) and nobody is asked for it.
const microphone = mode === "live"
  ? ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    `--use-file-for-fake-audio-capture=${JSON.parse(audioFile).clip}`, "--autoplay-policy=no-user-gesture-required"]
  : [];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", ...microphone],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
const page = await context.newPage();
const foreign = [];
const problems = [];
page.on("request", (request) => {
  const url = request.url();
  if (!url.startsWith(origin + "/") && !url.startsWith("blob:")) foreign.push(url);
});
page.on("console", (message) => {
  // Expected 401s (probing the session, a wrong password) are logged by Chromium as
  // "Failed to load resource"; anything else (a CSP refusal, a script error) is a problem.
  const text = message.text();
  if (message.type() === "error" && !text.startsWith("Failed to load resource")) problems.push(text);
});
page.on("pageerror", (error) => problems.push(String(error)));

const shot = (name) => page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function apiStatus(token, route) {
  const res = await fetch(`${base}${route}`, { headers: { Authorization: `Bearer ${token}` } });
  return res.status;
}

async function signIn(on = page, who = username) {
  await on.goto(base);
  await on.getByLabel("Username").fill(who);
  await on.getByLabel("Password").fill(password);
  await on.getByRole("button", { name: "Sign in" }).click();
  await on.getByRole("heading", { name: "Recordings" }).waitFor();
}

// A member uploaded a WAV-headed HTML page (the Rust side did) and sends an admin a link to
// it carrying the member's token. Neither opening that link signed in, nor the owner opening
// their own upload, may run it: the page would mint a management token with the cookie.
async function inert() {
  const { link, path: audioPath, member } = JSON.parse(audioFile);
  await signIn();
  const tokensBefore = (await (await page.request.get(`${base}/api/tokens`)).json()).tokens.length;
  const opened = await page.goto(`${base}${link}`);
  check(opened.status() === 400, `the token link is refused beside the session: ${opened.status()}`);
  check((await page.title()) !== "pwned", "nothing ran in the admin's tab");
  await shot("token-link-refused");

  const owner = await browser.newContext();
  const ownerPage = await owner.newPage();
  ownerPage.on("pageerror", (error) => problems.push(String(error)));
  await signIn(ownerPage, member);
  const download = ownerPage.waitForEvent("download", { timeout: 15_000 });
  await ownerPage.goto(`${base}${audioPath}`).catch(() => {});
  check((await download).suggestedFilename().length > 0, "opened directly, the upload is a download");
  check((await ownerPage.title()) !== "pwned", "nothing ran in the owner's tab");
  const headers = await ownerPage.evaluate(async (p) => {
    const r = await fetch(p);
    return { csp: r.headers.get("content-security-policy"), sniff: r.headers.get("x-content-type-options"), type: r.headers.get("content-type") };
  }, audioPath);
  check(headers.csp.includes("sandbox") && headers.sniff === "nosniff" && headers.type === "audio/wav", JSON.stringify(headers));
  await owner.close();

  await page.waitForTimeout(500);
  const after = (await (await page.request.get(`${base}/api/tokens`)).json()).tokens;
  check(after.length === tokensBefore && !after.some((t) => t.name === "pwned"), "no token was minted");
  return {};
}

async function tokens() {
  await page.goto(base);
  await page.getByRole("heading", { name: "Sign in to hark" }).waitFor();
  await shot("sign-in");
  await signIn();
  await shot("recordings-empty");

  // Create a token; read it from the page exactly once.
  await page.getByRole("link", { name: "Settings" }).click();
  await page.getByRole("heading", { name: "API Tokens" }).waitFor();
  await page.getByRole("button", { name: "Create token" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.getByLabel("Name").fill("browser test");
  await dialog.getByLabel("Expiration").selectOption("30d");
  await shot("create-token");
  await dialog.getByRole("button", { name: "Create token" }).click();
  const secret = page.locator("input[data-token]");
  await secret.waitFor();
  const token = await secret.inputValue();
  check(/^hark_pat_[0-9A-Za-z]{38}$/.test(token), `the dialog shows a token: ${token}`);
  const examples = await page.locator("dialog pre").allTextContents();
  check(examples.some((e) => e.includes(`${origin}/v1`)), "examples carry the server's URL");
  check(examples.some((e) => e.startsWith("Authorization: Bearer hark_pat_")), "the header example");
  await shot("token-created");
  await page.getByRole("button", { name: "I’ve saved it" }).click();
  await page.locator("dialog").waitFor({ state: "detached" });
  check((await page.locator("input[data-token]").count()) === 0, "the token is gone once the dialog closes");
  check(!(await page.content()).includes(token), "the page no longer holds the token");

  // Listed as active and unused; it works over plain HTTP, after which it is used...
  const row = page.locator("tr", { hasText: "browser test" });
  await row.locator(".badge", { hasText: "active" }).waitFor();
  await row.locator(".mark", { hasText: "unused" }).waitFor();
  check((await apiStatus(token, "/api/tokens/self")) === 200, "the new token is accepted");
  await page.waitForTimeout(600);
  await page.reload();
  await row.locator(".badge", { hasText: "active" }).waitFor();
  check((await row.locator(".mark", { hasText: "unused" }).count()) === 0, "last use is shown");
  await shot("tokens");

  // Its usage panel: the request drawn in the chart, and where it came from.
  await row.getByRole("button", { name: "Usage" }).click();
  const usage = page.getByRole("dialog");
  await usage.locator("svg.usage-chart rect[data-outcome=ok]").first().waitFor();
  await usage.getByRole("cell", { name: "127.0.0.1" }).waitFor();
  check((await usage.locator(".totals").textContent()).includes("1 ok"), "the totals count the one use");
  await usage.getByLabel("Period", { exact: true }).selectOption("minute");
  await usage.locator("svg.usage-chart rect[data-outcome=ok]").first().waitFor();
  await shot("token-usage");
  await usage.getByRole("button", { name: "Close" }).click();
  await page.locator("dialog").waitFor({ state: "detached" });

  // A token that expires within the week puts a banner on the page.
  const soon = new Date(Date.now() + 3 * 86_400_000).toISOString();
  const made = await page.request.post(`${base}/api/tokens`, { data: { name: "short-lived", expires: soon }, headers: { origin } });
  check(made.status() === 201, `a short-lived token is made: ${made.status()}`);
  await page.reload();
  await page.locator(".notice", { hasText: "“short-lived” expires within 7 days" }).waitFor();
  await page.locator("tr", { hasText: "short-lived" }).locator(".mark", { hasText: "expires soon" }).waitFor();
  await shot("tokens-expiring");

  // ...until it is revoked in the UI.
  await row.getByRole("button", { name: "Revoke" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Revoke" }).click();
  await row.locator(".badge", { hasText: "revoked" }).waitFor();
  check((await apiStatus(token, "/api/tokens/self")) === 401, "the revoked token is refused");
  await shot("token-revoked");

  // A project API key, made in the same dialog: batch only, bound to the default project.
  await page.getByRole("button", { name: "Create token" }).click();
  const keyDialog = page.getByRole("dialog");
  await keyDialog.getByLabel("Name").fill("ingest key");
  await keyDialog.getByLabel("Type", { exact: true }).selectOption("project");
  await keyDialog.getByLabel("Project").locator("option", { hasText: "Default project" }).waitFor({ state: "attached" });
  await keyDialog.getByLabel("Key type").selectOption("batch");
  await keyDialog.getByLabel("Expiration").selectOption("1y");
  await keyDialog.getByRole("button", { name: "Create token" }).click();
  await page.locator("input[data-token]").waitFor();
  const key = await page.locator("input[data-token]").inputValue();
  check(/^hark_key_[0-9A-Za-z]{38}$/.test(key), `the dialog shows a project key: ${key}`);
  await shot("project-key-created");
  await page.getByRole("button", { name: "I’ve saved it" }).click();
  check((await apiStatus(key, "/api/v3/sessions/999999")) === 404, "the key reaches the batch API");
  check((await apiStatus(key, "/api/recordings")) === 403, "and nothing else");
  await page.locator("tr", { hasText: "ingest key" }).getByText("project #1 key").waitFor();

  // Admins add a project and see the members.
  await page.getByRole("link", { name: "Members & projects" }).click();
  await page.getByRole("heading", { name: "Members" }).waitFor();
  await page.getByRole("cell", { name: username }).waitFor();
  await page.getByLabel("New project name").fill("Call center");
  await page.getByRole("button", { name: "Add project" }).click();
  await page.getByRole("cell", { name: "Call center" }).waitFor();
  await page.locator("tr", { hasText: "ingest key" }).getByText("Default project").waitFor();
  await shot("members-projects");

  // Admins see it in the audit log, newest first, without the token.
  await page.getByRole("link", { name: "Audit log" }).click();
  await page.getByRole("heading", { name: "Audit log" }).waitFor();
  // Newest first; token.new_ip events from the flush may land on top, so look for the row.
  await page.locator("tbody tr", { hasText: "project.created" }).first().waitFor();
  await page.locator("tbody tr", { hasText: "token.revoked" }).first().waitFor();
  check(!(await page.content()).includes(token), "the audit log never shows the token");
  await shot("audit-log");
  // Tracing a leaked token: pasted, hashed in the page, its events alone listed.
  await page.getByLabel("Token to trace").fill(token);
  await page.getByLabel("Token to trace").press("Enter");
  await page.getByText("Showing events of the token with SHA-256").waitFor();
  await page.locator("tbody tr", { hasText: "token.created" }).first().waitFor();
  const traced = await page.locator("tbody tr").allTextContents();
  check(traced.length >= 2 && traced.every((r) => !r.includes("project.created")), `only that token's events: ${traced.length}`);
  check(!(await page.content()).includes(token), "the traced token is not kept in the page");
  await shot("audit-trace");
  await page.getByRole("link", { name: "API Tokens" }).click();

  // A webhook, added in Settings; its secret is shown once.
  await page.getByRole("link", { name: "Webhooks" }).click();
  await page.getByRole("heading", { name: "Webhooks" }).waitFor();
  await page.getByRole("button", { name: "Add webhook" }).click();
  await page.getByRole("dialog").getByLabel("URL").fill("https://hooks.example.com/hark");
  await page.getByRole("dialog").getByRole("button", { name: "Add webhook" }).click();
  const hookSecret = await page.locator("input[data-secret]").inputValue();
  check(/^whsec_[0-9A-Za-z]{40}$/.test(hookSecret), `the dialog shows the signing secret: ${hookSecret}`);
  await shot("webhook-created");
  await page.getByRole("button", { name: "I’ve saved it" }).click();
  await page.locator("tr", { hasText: "https://hooks.example.com/hark" }).waitFor();
  check(!(await page.content()).includes(hookSecret), "the page no longer holds the secret");
  await page.getByRole("link", { name: "API Tokens" }).click();

  // Phone width: the tokens page still reads.
  await page.setViewportSize({ width: 390, height: 844 });
  await shot("tokens-phone");
  await page.setViewportSize({ width: 1280, height: 860 });

  // Upload a clip with the file picker; its transcript appears on its own.
  await page.getByRole("link", { name: "Recordings" }).click();
  await page.getByRole("heading", { name: "Recordings" }).waitFor();
  await page.locator("#file").setInputFiles(audioFile);
  const title = path.basename(audioFile).replace(/\.[^.]+$/, "");
  await page.getByRole("link", { name: title }).waitFor();
  await shot("recordings-uploaded");
  await page.locator("tr", { hasText: title }).locator(".badge", { hasText: "completed" }).waitFor({ timeout: 180_000 });
  await page.getByRole("link", { name: title }).click();
  await page.locator(".segments li").first().waitFor({ timeout: 30_000 });
  const transcript = (await page.locator(".segments").innerText()).replace(/\s+/g, " ");
  const stamp = page.locator(".stamp").nth(1);
  await stamp.click();
  const position = await page.locator("audio").evaluate((a) => a.currentTime);
  check(position > 0, "clicking a timestamp moves the player");
  await page.getByRole("heading", { name: "Summary" }).waitFor();
  await shot("recording");
  const status = await page.request.get(`${base}/api/recordings`);
  check(status.status() === 200, "the session cookie reads the API");

  // The clip's completion is owed to the webhook; this network reaches no outside host, so
  // the delivery shows its failed attempt and waits for the next.
  await page.getByRole("link", { name: "Settings" }).click();
  await page.getByRole("link", { name: "Webhooks" }).click();
  const delivery = page.locator("table.deliveries tbody tr").first();
  await delivery.getByText("transcription.completed").waitFor();
  await delivery.locator(".badge", { hasText: "pending" }).waitFor();
  await shot("webhook-deliveries");
  return { token, key, transcript, hookSecret };
}

// The live page: a temporary key for the chosen project, the "microphone" streamed to /v2,
// partials shown provisional, finals with their times, then Stop and Save as recording.
async function live() {
  const { project, words } = JSON.parse(audioFile);
  let key = null;
  page.on("websocket", (ws) => { key = new URL(ws.url()).searchParams.get("jwt"); });
  await signIn();
  await page.getByRole("link", { name: "Live" }).click();
  await page.getByRole("heading", { name: "Live transcription" }).waitFor();
  const select = page.getByLabel("Project");
  await select.locator("option", { hasText: project }).waitFor({ state: "attached" });
  await select.selectOption({ label: project });
  // Partials are replaced as they come: note the first one shown, and how it looked.
  await page.evaluate(() => {
    new MutationObserver(() => {
      const p = document.querySelector(".partial");
      if (!window.firstPartial && p && !p.hidden && p.textContent.trim()) {
        window.firstPartial = { text: p.textContent, style: getComputedStyle(p).fontStyle };
      }
    }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
  });
  const started = Date.now();
  await page.getByRole("button", { name: "Start", exact: true }).click();
  for (const word of words) {
    await page.locator(".final", { hasText: new RegExp(`\\b${word}\\b`, "i") }).first().waitFor({ timeout: 120_000 });
  }
  const seconds = (Date.now() - started) / 1000;
  await shot("live");
  const partial = await page.evaluate(() => window.firstPartial);
  check(partial?.style === "italic", `a partial was shown, provisional: ${JSON.stringify(partial)}`);
  check(/^hark_key_/.test(key || ""), "the page streams with a temporary project key");
  const finals = await page.locator(".final").allInnerTexts();
  check(finals.every((f) => /^\d+:\d\d\s/.test(f)), `finals carry their start times: ${finals}`);

  await page.getByRole("button", { name: "Stop", exact: true }).click();
  await page.getByText(/^Done ·/).waitFor({ timeout: 60_000 });
  await page.getByRole("button", { name: "Save as recording" }).click();
  const saved = page.locator("a[href^='#/recordings/']");
  await saved.waitFor({ timeout: 30_000 });
  const id = Number((await saved.getAttribute("href")).split("/").pop());
  await shot("live-saved");
  return { key, recording: id, finals: finals.join(" "), partial: partial.text, seconds };
}

async function setup() {
  await page.goto(base);
  await page.getByRole("heading", { name: "Welcome to hark" }).waitFor();
  await shot("first-run");
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByLabel("Confirm password").fill(password);
  await page.getByRole("button", { name: "Create administrator" }).click();
  await page.getByRole("heading", { name: "Recordings" }).waitFor();
  check((await page.locator("#who").innerText()).includes("admin"), "signed in as an admin");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Sign in to hark" }).waitFor();
  await signIn();
  return {};
}

let result;
try {
  const modes = { setup, inert, live, tokens };
  result = await (modes[mode] || tokens)();
  check(foreign.length === 0, `requests left the origin: ${foreign.join(", ")}`);
  check(problems.length === 0, `console errors (CSP or script): ${problems.join(" | ")}`);
  console.log(JSON.stringify({ ok: true, ...result }));
} catch (error) {
  await shot("failure").catch(() => {});
  console.log(JSON.stringify({ ok: false, error: String(error?.stack || error), problems, foreign }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
