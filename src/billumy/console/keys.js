// Keys & usage (admin keys only): the keys of the admin's tenant (a global admin's: every
// tenant, or the one in the filter); create one, its secret shown once; change its limits,
// rotate it (a new secret, shown once), revoke it. Usage per day and per key over a range of
// UTC days, as bars drawn with SVG elements made by DOM calls (no chart library, no inline
// style: the page's policy allows neither) and as tables, and the admin API's CSV.
import { call, getJSON } from "./api.js";
import { clear, download, fill, field, h, table, uid } from "./dom.js";
import { currentLanguage, formatDate, t } from "./i18n.js";

const SCOPES = ["inference", "metrics", "admin"];
const LIMITS = ["requests_per_minute", "tokens_per_day", "parallel"];
const LIMIT_LABELS = { requests_per_minute: "keys.rpm", tokens_per_day: "keys.tpd", parallel: "keys.parallel" };
const SVG_NS = "http://www.w3.org/2000/svg";
const DAY_MS = 86400000;

const number = (n) => Number(n).toLocaleString(currentLanguage());
const utcDay = (ms) => new Date(ms).toISOString().slice(0, 10);

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  if (text !== undefined) el.textContent = String(text);
  return el;
}

// A key's limits in words: each one set, or "server default" when none is.
function limitsText(key) {
  const parts = [];
  const says = {
    requests_per_minute: (v) => `${number(v)}${t("keys.perMinute")}`,
    tokens_per_day: (v) => `${number(v)} ${t("keys.perDay")}`,
    parallel: (v) => `${number(v)} ${t("keys.inParallel")}`,
  };
  for (const name of LIMITS) {
    const value = key[name];
    if (value === null || value === undefined) continue;
    parts.push(value === 0 ? `${t(LIMIT_LABELS[name])}: ${t("keys.unlimited")}` : says[name](value));
  }
  return parts.length ? parts.join(" · ") : t("keys.default");
}

function limitInputs(key) {
  return LIMITS.map((name) =>
    h("input", {
      type: "number",
      name,
      min: 0,
      step: 1,
      inputmode: "numeric",
      value: key && key[name] !== null && key[name] !== undefined ? String(key[name]) : "",
    }),
  );
}

// {name: int | null} from the inputs: empty is null (the server default).
function limitValues(inputs) {
  const out = {};
  for (const input of inputs) {
    const text = input.value.trim();
    out[input.name] = text === "" ? null : Number(text);
  }
  return out;
}

// Bars, one per item {label, value, tip}: standing (days) or, with `horizontal`, lying (keys,
// named at their left). The values go in as SVG attributes and text nodes, the look comes from
// classes in console.css, and each bar's <title> is its tooltip.
export function barChart(items, title, { horizontal = false } = {}) {
  const titleId = uid("chart");
  const most = Math.max(1, ...items.map((i) => i.value));
  let width, height;
  const root = svg("svg", { class: `bars${horizontal ? " horizontal" : ""}`, role: "img", "aria-labelledby": titleId });
  root.append(svg("title", { id: titleId }, title));
  if (horizontal) {
    const row = 22, left = 150, right = 70;
    width = 560;
    height = Math.max(1, items.length) * row + 8;
    items.forEach((item, i) => {
      const y = 4 + i * row;
      const w = Math.max(item.value > 0 ? 1 : 0, ((width - left - right) * item.value) / most);
      const label = item.label.length > 22 ? `${item.label.slice(0, 21)}…` : item.label;
      const g = svg("g", { class: "bar-group" });
      g.append(
        svg("title", {}, item.tip),
        svg("text", { class: "axis", x: left - 6, y: y + 15, "text-anchor": "end" }, label),
        svg("rect", { class: "bar", x: left, y: y + 2, width: w.toFixed(1), height: row - 6, rx: 2 }),
        svg("text", { class: "value", x: left + w + 4, y: y + 15 }, number(item.value)),
      );
      root.append(g);
    });
  } else {
    const slot = items.length > 40 ? 8 : 24, top = 18, bottom = 22, left = 4;
    width = Math.max(320, left * 2 + items.length * slot);
    height = 180;
    const plot = height - top - bottom;
    const every = Math.ceil(items.length / Math.floor(width / 48));
    root.append(svg("line", { class: "baseline", x1: 0, y1: top + plot, x2: width, y2: top + plot }));
    root.append(svg("text", { class: "axis", x: left, y: 12 }, `${t("usage.most")} ${number(most)}`));
    items.forEach((item, i) => {
      const tall = item.value > 0 ? Math.max(1, (plot * item.value) / most) : 0;
      const x = left + i * slot;
      const g = svg("g", { class: "bar-group" });
      g.append(svg("title", {}, item.tip), svg("rect", { class: "bar", x: x + 2, y: (top + plot - tall).toFixed(1), width: slot - 4, height: tall.toFixed(1), rx: 2 }));
      if (i % every === 0) g.append(svg("text", { class: "axis", x: x + slot / 2, y: height - 6, "text-anchor": "middle" }, item.label));
      root.append(g);
    });
  }
  // Its own size at most (shrunk to fit a phone, never blown up with its text).
  root.setAttribute("viewBox", `0 0 ${width} ${height}`);
  root.setAttribute("width", width);
  root.setAttribute("height", height);
  return root;
}

export function render(root, { say, me }) {
  const everywhere = Boolean(me && me.global_admin);
  let shown = [];

  // --- the tenant filter (a global admin's) ---------------------------------------------
  const tenantsSeen = h("datalist", { id: uid("tenants") });
  const filter = h("input", { type: "text", name: "tenant", maxlength: 200, list: tenantsSeen.id, autocomplete: "off" });
  const filterForm = everywhere
    ? h(
        "form",
        { class: "row filter", "aria-label": t("keys.filter") },
        field(t("keys.tenant"), filter, t("keys.allTenants")),
        tenantsSeen,
        h("button", { type: "submit", class: "secondary" }, t("keys.apply")),
      )
    : h("p", { class: "meta" }, `${t("keys.tenant")}: `, h("strong", {}, me ? me.tenant : ""));
  const tenantParam = () => (everywhere && filter.value.trim() ? filter.value.trim() : null);

  // --- the secret, shown once ------------------------------------------------------------
  const secretView = h("section", { class: "card secret", "aria-labelledby": "secret-title", tabindex: "-1", hidden: true });

  function showSecret(made, rotated) {
    const value = h("input", { type: "text", readonly: true, value: made.key, class: "code", spellcheck: "false", autocomplete: "off" });
    const copy = h("button", { type: "button" }, t("keys.copy"));
    const done = h("button", { type: "button", class: "secondary" }, t("keys.hideSecret"));
    copy.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(value.value);
        say(t("keys.copied"));
      } catch {
        // No Clipboard API (a page served over plain HTTP from another host): the old way.
        value.select();
        const copied = typeof document.execCommand === "function" && document.execCommand("copy");
        say(copied ? t("keys.copied") : t("keys.copyFailed"), copied ? "info" : "error");
      }
    });
    done.addEventListener("click", () => {
      clear(secretView);
      secretView.hidden = true;
      say("");
      focusKey(made.id);
    });
    fill(
      secretView,
      h("h2", { id: "secret-title" }, `${rotated ? t("keys.newSecretOf") : t("keys.secretOf")} ${made.name}`),
      h("p", { class: "warning", role: "alert" }, t("keys.secretWarning")),
      h("div", { class: "row" }, field(t("keys.secret"), value), h("div", { class: "actions" }, copy, done)),
    );
    secretView.hidden = false;
    value.focus();
    value.select();
  }

  // --- the keys --------------------------------------------------------------------------
  const list = h("div", {});
  const editor = h("form", { class: "card", "aria-labelledby": "limits-title", hidden: true });
  const keysView = h(
    "section",
    { class: "card", "aria-labelledby": "keys-title" },
    h("h1", { id: "keys-title" }, t("nav.keys")),
    filterForm,
    h("h2", {}, t("keys.title")),
    list,
  );

  function actions(key) {
    if (!key.active) return "";
    const named = (label) => `${label} ${key.name}`;
    return h(
      "div",
      { class: "actions" },
      h("button", { type: "button", class: "secondary", "aria-label": named(t("keys.limits")), onclick: () => edit(key) }, t("keys.limits")),
      h("button", { type: "button", class: "secondary", "aria-label": named(t("keys.rotate")), onclick: () => rotate(key) }, t("keys.rotate")),
      h("button", { type: "button", class: "danger", "aria-label": named(t("keys.revoke")), onclick: () => revoke(key) }, t("keys.revoke")),
    );
  }

  function keysTable(keys) {
    const headers = [t("keys.name"), t("keys.prefix"), t("keys.tenant"), t("keys.scopes"), t("keys.limits"), t("keys.lastUsed"), t("keys.status"), t("keys.actions")];
    // Each cell names its column, for the phone layout where rows become cards (console.css).
    const cell = (column, ...content) => h("td", { dataset: { label: headers[column] } }, content);
    return h(
      "div",
      { class: "scroll", tabindex: "0", role: "region", "aria-label": t("keys.title") },
      h(
        "table",
        { class: "keys" },
        h("caption", {}, t("keys.title")),
        h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
        h(
          "tbody",
          {},
          keys.map((key) =>
            h(
              "tr",
              { dataset: { key: key.id }, class: key.active ? "" : "revoked" },
              h("th", { scope: "row" }, key.name),
              cell(1, h("code", {}, `${key.prefix}…`)),
              cell(2, key.tenant),
              cell(3, key.scopes.join(", ")),
              cell(4, limitsText(key)),
              cell(5, key.last_used_at ? formatDate(key.last_used_at) : t("keys.never")),
              cell(
                6,
                h(
                  "span",
                  {},
                  h("span", { class: key.active ? "tag ok" : "tag" }, key.active ? t("keys.active") : t("keys.revoked")),
                  me && key.id === me.id ? [" ", h("span", { class: "tag" }, t("keys.yours"))] : null,
                ),
              ),
              cell(7, actions(key)),
            ),
          ),
        ),
      ),
    );
  }

  async function loadKeys() {
    try {
      const params = new URLSearchParams();
      if (tenantParam()) params.set("tenant", tenantParam());
      const found = await getJSON(`/admin/keys?${params}`);
      shown = found.keys;
      if (everywhere && !tenantParam()) {
        fill(tenantsSeen, [...new Set(shown.map((k) => k.tenant))].sort().map((name) => h("option", { value: name })));
      }
      fill(list, shown.length ? keysTable(shown) : h("p", { class: "empty" }, t("keys.none")));
      keySelect();
    } catch (exc) {
      say(exc.message, "error");
    }
  }

  // Back to a key's row after its table was drawn again (the button pressed is gone): its
  // first button, else its name, so that the keyboard goes on from there.
  function focusKey(id) {
    const row = [...list.querySelectorAll("tr[data-key]")].find((tr) => tr.dataset.key === id);
    if (!row) return;
    const target = row.querySelector("button") || row.querySelector("th");
    if (target.tagName === "TH") target.setAttribute("tabindex", "-1");
    target.focus();
  }

  function edit(key) {
    const inputs = limitInputs(key);
    const cancel = h("button", { type: "button", class: "secondary" }, t("keys.cancel"));
    fill(
      editor,
      h("h2", { id: "limits-title" }, `${t("keys.limitsOf")} ${key.name}`),
      h("p", { class: "meta" }, t("keys.limitsHint")),
      h("div", { class: "row" }, inputs.map((input) => field(t(LIMIT_LABELS[input.name]), input))),
      h("div", { class: "actions" }, h("button", { type: "submit" }, t("keys.save")), cancel),
    );
    const close = () => {
      editor.hidden = true;
      clear(editor);
      focusKey(key.id);
    };
    cancel.addEventListener("click", close);
    editor.onsubmit = async (event) => {
      event.preventDefault();
      try {
        await getJSON(`/admin/keys/${encodeURIComponent(key.id)}`, { method: "PATCH", json: limitValues(inputs) });
        say(t("keys.saved"));
        await loadKeys();
        close();
      } catch (exc) {
        say(exc.message, "error");
      }
    };
    editor.onkeydown = (event) => {
      if (event.key === "Escape") close();
    };
    editor.hidden = false;
    inputs[0].focus();
  }

  async function rotate(key) {
    if (!window.confirm(`${t("keys.confirmRotate")} ${key.name}`)) return;
    try {
      const made = await getJSON(`/admin/keys/${encodeURIComponent(key.id)}/rotate`, { method: "POST" });
      showSecret(made, true);
      say(t("keys.rotated"));
      await loadKeys();
    } catch (exc) {
      say(exc.message, "error");
    }
  }

  async function revoke(key) {
    if (!window.confirm(`${t("keys.confirmRevoke")} ${key.name}`)) return;
    try {
      await getJSON(`/admin/keys/${encodeURIComponent(key.id)}/revoke`, { method: "POST" });
      say(t("keys.revokedDone"));
      await loadKeys();
      focusKey(key.id);
    } catch (exc) {
      say(exc.message, "error");
    }
  }

  // --- a new key -------------------------------------------------------------------------
  const name = h("input", { type: "text", name: "name", maxlength: 200, required: true, autocomplete: "off" });
  const scopeBoxes = SCOPES.map((scope) => h("input", { type: "checkbox", name: "scopes", value: scope }));
  // The default (what the form's reset goes back to): inference only.
  scopeBoxes[0].defaultChecked = true;
  const newTenant = h("input", { type: "text", name: "tenant", maxlength: 200, placeholder: me ? me.tenant : "", autocomplete: "off" });
  const newLimits = limitInputs(null);
  const createForm = h(
    "form",
    { class: "card", "aria-labelledby": "create-title" },
    h("h2", { id: "create-title" }, t("keys.create")),
    field(t("keys.name"), name),
    h(
      "fieldset",
      { class: "scopes" },
      h("legend", {}, t("keys.scopes")),
      scopeBoxes.map((box) => h("label", {}, box, " ", box.value)),
      h("small", { class: "hint" }, t("keys.scopesHint")),
    ),
    everywhere ? field(t("keys.tenant"), newTenant, t("keys.tenantHint")) : null,
    h(
      "details",
      {},
      h("summary", {}, t("keys.optionalLimits")),
      h("p", { class: "meta" }, t("keys.limitsHint")),
      h("div", { class: "row" }, newLimits.map((input) => field(t(LIMIT_LABELS[input.name]), input))),
    ),
    h("div", { class: "actions" }, h("button", { type: "submit" }, t("keys.createButton"))),
  );
  createForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { name: name.value.trim(), scopes: scopeBoxes.filter((b) => b.checked).map((b) => b.value) };
    if (everywhere && newTenant.value.trim()) body.tenant = newTenant.value.trim();
    for (const [limit, value] of Object.entries(limitValues(newLimits))) if (value !== null) body[limit] = value;
    try {
      const made = await getJSON("/admin/keys", { method: "POST", json: body });
      createForm.reset();
      showSecret(made, false);
      say(t("keys.made"));
      await loadKeys();
    } catch (exc) {
      say(exc.message, "error");
    }
  });

  // --- usage -----------------------------------------------------------------------------
  const today = Date.now();
  const since = h("input", { type: "date", name: "since", required: true, value: utcDay(today - 13 * DAY_MS) });
  const until = h("input", { type: "date", name: "until", required: true, value: utcDay(today) });
  const onlyKey = h("select", { name: "key" });
  const csv = h("button", { type: "button", class: "secondary" }, t("usage.csv"));
  const usageResult = h("div", { class: "usage", "aria-live": "polite" });
  const usageForm = h(
    "form",
    { class: "card", "aria-labelledby": "usage-title" },
    h("h2", { id: "usage-title" }, t("usage.title")),
    h("div", { class: "row" }, field(t("usage.since"), since), field(t("usage.until"), until), field(t("usage.key"), onlyKey)),
    h("div", { class: "actions" }, h("button", { type: "submit" }, t("usage.show")), csv),
    usageResult,
  );

  function keySelect() {
    const chosen = onlyKey.value;
    fill(onlyKey, h("option", { value: "" }, t("usage.allKeys")), shown.map((k) => h("option", { value: k.id }, `${k.name} (${k.prefix}…)`)));
    onlyKey.value = shown.some((k) => k.id === chosen) ? chosen : "";
  }

  function usageParams() {
    const params = new URLSearchParams({ since: since.value, until: until.value });
    if (tenantParam()) params.set("tenant", tenantParam());
    if (onlyKey.value) params.set("key", onlyKey.value);
    return params;
  }

  function showUsage(report) {
    const rows = report.usage || [];
    const days = new Map();
    const keys = new Map();
    // Every day of the range, those without use at 0 (a year at most: beyond, the used ones).
    const first = Date.parse(`${since.value}T00:00:00Z`), last = Date.parse(`${until.value}T00:00:00Z`);
    if (last >= first && (last - first) / DAY_MS <= 366) {
      for (let d = first; d <= last; d += DAY_MS) days.set(utcDay(d), { requests: 0, total: 0 });
    }
    for (const row of rows) {
      const day = days.get(row.day) || { requests: 0, total: 0 };
      day.requests += row.requests;
      day.total += row.total_tokens;
      days.set(row.day, day);
      const key = keys.get(row.key_id) || { name: row.key_name || row.key_id, tenant: row.tenant || "", requests: 0, prompt: 0, completion: 0, total: 0 };
      key.requests += row.requests;
      key.prompt += row.prompt_tokens;
      key.completion += row.completion_tokens;
      key.total += row.total_tokens;
      keys.set(row.key_id, key);
    }
    if (!rows.length) {
      fill(usageResult, h("p", { class: "empty" }, t("usage.none")));
      return;
    }
    const dayList = [...days.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
    const keyList = [...keys.values()].sort((a, b) => b.total - a.total);
    const tokens = t("usage.tokens"), requests = t("usage.requests").toLowerCase();
    const totals = report.totals || {};
    fill(
      usageResult,
      h(
        "dl",
        { class: "facts-list" },
        h("dt", {}, t("usage.requests")), h("dd", { dataset: { name: "requests" } }, number(totals.requests || 0)),
        h("dt", {}, t("usage.total")), h("dd", { dataset: { name: "tokens" } }, number(totals.total_tokens || 0)),
      ),
      h(
        "div",
        { class: "charts" },
        h(
          "figure",
          { class: "usage-chart" },
          barChart(
            dayList.map(([day, v]) => ({ label: day.slice(5), value: v.total, tip: `${day}: ${number(v.total)} ${tokens}, ${number(v.requests)} ${requests}` })),
            `${t("usage.perDay")}, ${since.value} – ${until.value}`,
          ),
          h("figcaption", {}, t("usage.perDay")),
        ),
        h(
          "figure",
          { class: "usage-chart" },
          barChart(
            keyList.slice(0, 12).map((k) => ({ label: k.name, value: k.total, tip: `${k.name}: ${number(k.total)} ${tokens}, ${number(k.requests)} ${requests}` })),
            t("usage.perKey"),
            { horizontal: true },
          ),
          h("figcaption", {}, t("usage.perKey")),
        ),
      ),
      h("h3", {}, t("usage.perKey")),
      table(
        [t("usage.key"), t("keys.tenant"), t("usage.requests"), t("usage.prompt"), t("usage.completion"), t("usage.total")],
        keyList.map((k) => [k.name, k.tenant, number(k.requests), number(k.prompt), number(k.completion), number(k.total)]),
        t("usage.perKey"),
      ),
      h("h3", {}, t("usage.perDay")),
      table(
        [t("usage.day"), t("usage.requests"), t("usage.total")],
        dayList.filter(([, v]) => v.requests || v.total).map(([day, v]) => [day, number(v.requests), number(v.total)]),
        t("usage.perDay"),
      ),
    );
  }

  async function loadUsage() {
    try {
      showUsage(await getJSON(`/admin/usage?${usageParams()}`));
    } catch (exc) {
      say(exc.message, "error");
    }
  }

  usageForm.addEventListener("submit", (event) => {
    event.preventDefault();
    loadUsage();
  });
  csv.addEventListener("click", async () => {
    try {
      const params = usageParams();
      params.set("format", "csv");
      const response = await call(`/admin/usage?${params}`);
      download(`usage-${since.value}-${until.value}.csv`, await response.text(), "text/csv");
    } catch (exc) {
      say(exc.message, "error");
    }
  });
  if (everywhere) {
    filterForm.addEventListener("submit", (event) => {
      event.preventDefault();
      editor.hidden = true;
      loadKeys().then(loadUsage);
    });
  }

  root.append(h("div", { class: "stack" }, secretView, keysView, editor, createForm, usageForm));
  loadKeys().then(loadUsage);
}
