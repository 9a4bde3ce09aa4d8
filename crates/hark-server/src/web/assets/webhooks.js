// The webhooks page (#/settings/webhooks): endpoints told when your transcriptions end,
// the secret that signs per-job callbacks (callback_url, Fireflies' webhook, Speechmatics'
// notification_config), and every delivery with its status and attempts. Secrets are
// shown once, when made; hark signs each delivery with an HMAC-SHA256 of its body.

import { h, api, shell, main, me, field, errorLine, showError, toast, dialog, confirmDialog, settingsTabs, when } from "./app.js";

const EVENTS = ["transcription.completed", "transcription.failed", "token.new_ip", "token.revoked_by_value", "token.expiring"];

export async function webhooksView() {
  shell("settings");
  const canChange = me.role !== "viewer";
  const add = h("button", { type: "button", class: "primary", disabled: !canChange }, "Add webhook");
  add.addEventListener("click", () => createWebhookDialog(load));
  const hooks = h("div", { class: "list" }, h("p", { class: "muted" }, "Loading…"));
  const secretLine = h("p", { class: "muted" });
  const rotate = h("button", { type: "button", class: "secondary", disabled: !canChange }, "New callback secret");
  rotate.addEventListener("click", async () => {
    try {
      const { secret } = await api("POST", "/api/webhooks/callback-secret", {});
      showSecretOnce("Callback signing secret", secret, load);
    } catch (err) { toast(err.message); }
  });
  const deliveries = h("div", { class: "list" });
  main.append(
    h("div", { class: "page-head" }, h("h1", {}, "Account settings")),
    settingsTabs("webhooks"),
    h("div", { class: "section-head" },
      h("div", {}, h("h2", {}, "Webhooks"),
        h("p", { class: "muted" }, "hark POSTs a signed JSON event to each of these when one of your transcriptions completes or fails.")),
      add),
    hooks,
    h("div", { class: "section-head" },
      h("div", {}, h("h2", {}, "Per-job callbacks"),
        h("p", { class: "muted" }, "Callbacks named with a single upload (callback_url, Fireflies’ webhook, Speechmatics’ notification_config) are signed with this secret."),
        secretLine),
      rotate),
    h("h2", {}, "Recent deliveries"),
    deliveries);

  async function load() {
    let data, sent;
    try {
      [data, sent] = await Promise.all([api("GET", "/api/webhooks"), api("GET", "/api/webhooks/deliveries")]);
    } catch (err) {
      hooks.replaceChildren(h("p", { class: "error" }, err.message));
      return;
    }
    secretLine.textContent = data.callback_secret_created_at
      ? `Secret made ${when(data.callback_secret_created_at)}.`
      : "No secret yet: per-job callbacks go unsigned until you make one.";
    hooks.replaceChildren(data.webhooks.length ? h("table", { class: "table webhooks" },
      h("thead", {}, h("tr", {}, ["URL", "Events", "Created", ""].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, data.webhooks.map((w) => h("tr", { "data-webhook-id": String(w.id) },
        h("td", {}, h("code", {}, w.url), w.description ? h("span", { class: "muted small" }, ` — ${w.description}`) : null),
        h("td", {}, w.events.join(", ")),
        h("td", {}, when(w.created_at)),
        h("td", { class: "row-actions" }, canChange ? h("button", { type: "button", class: "danger small", onclick: async () => {
          if (!(await confirmDialog("Delete webhook?", `${w.url} will get no more events.`, "Delete"))) return;
          try {
            await api("DELETE", `/api/webhooks/${w.id}`);
            toast("Webhook deleted.");
            load();
          } catch (err) { toast(err.message); }
        } }, "Delete") : null)))))
      : h("div", { class: "empty" }, h("p", {}, "No webhooks yet.")));
    deliveries.replaceChildren(sent.deliveries.length ? h("table", { class: "table deliveries" },
      h("thead", {}, h("tr", {}, ["Event", "To", "Status", "Attempts", "Last answer", "Created"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, sent.deliveries.map((d) => h("tr", { "data-delivery-id": String(d.id) },
        h("td", {}, d.event, d.recording_id ? h("span", { class: "muted small" }, ` · recording #${d.recording_id}`) : null),
        h("td", {}, h("code", {}, d.url), h("br"), h("span", { class: "muted small" }, d.webhook_id ? `webhook #${d.webhook_id}` : "per-job callback")),
        h("td", {}, h("span", { class: `badge badge-${d.status}` }, d.status),
          d.next_attempt_at ? h("span", { class: "muted small" }, ` next ${when(d.next_attempt_at)}`) : null),
        h("td", {}, String(d.attempts)),
        h("td", {}, d.last_status ? `HTTP ${d.last_status}` : "", d.last_error ? h("span", { class: "muted small" }, ` ${d.last_error}`) : null),
        h("td", {}, when(d.created_at))))))
      : h("div", { class: "empty" }, h("p", {}, "Nothing sent yet.")));
  }
  load();
}

function createWebhookDialog(reload) {
  const url = h("input", { name: "url", type: "url", required: true, maxlength: "2048", placeholder: "https://example.com/hooks/hark" });
  const description = h("input", { name: "description", maxlength: "200", placeholder: "e.g. n8n workflow" });
  const events = h("fieldset", { class: "scopes" }, h("legend", {}, "Events"),
    EVENTS.map((e) => h("label", { class: "check" }, h("input", { type: "checkbox", name: "event", value: e, checked: e.startsWith("transcription.") }), ` ${e}`)));
  const error = errorLine();
  const form = h("form", {},
    field("URL", url, "http or https. Internal addresses are refused unless the server allows them."),
    field("Description", description),
    events,
    error,
    h("div", { class: "actions" },
      h("button", { type: "button", class: "secondary", onclick: () => d.close() }, "Cancel"),
      h("button", { type: "submit", class: "primary" }, "Add webhook")));
  const d = dialog("Add webhook", form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const chosen = [...form.querySelectorAll("input[name=event]:checked")].map((c) => c.value);
    if (!chosen.length) return showError(error, new Error("Choose at least one event."));
    try {
      const created = await api("POST", "/api/webhooks", { url: url.value.trim(), description: description.value.trim(), events: chosen });
      d.close();
      showSecretOnce(`Webhook for ${created.url}`, created.secret, reload);
    } catch (err) { showError(error, err); }
  });
  url.focus();
}

function showSecretOnce(title, secret, reload) {
  const box = h("input", { class: "secret", readonly: true, value: secret, "aria-label": "Signing secret", "data-secret": "" });
  const body = h("div", {},
    h("p", { class: "warning", role: "alert" }, "Copy this secret now. You won’t see it again."),
    h("div", { class: "secret-row" }, box),
    h("div", { class: "example" }, h("h3", {}, "Check a delivery (Python)"), h("pre", {}, h("code", {},
      "import hashlib, hmac\n\nexpected = \"sha256=\" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()\n" +
      "ok = hmac.compare_digest(expected, request.headers[\"X-Hark-Signature\"])"))),
    h("div", { class: "actions" }, h("button", { type: "button", class: "primary", onclick: () => d.close() }, "I’ve saved it")));
  const d = dialog(title, body, { onclose: () => { box.value = ""; reload(); } });
  box.select();
}
