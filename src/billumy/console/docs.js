// The API reference: the server's OpenAPI document rendered as a list of operations and
// schemas, everything as text. No third-party renderer, so nothing to fetch from a CDN.
import { ApiError, getJSON } from "./api.js";
import { clear, fill, download, field, h, table } from "./dom.js";
import { currentLanguage, setLanguage, t, translate } from "./i18n.js";

const METHODS = ["get", "post", "put", "patch", "delete", "head"];

function refName(schema) {
  return schema && schema.$ref ? schema.$ref.split("/").pop() : null;
}

function schemaView(schema) {
  const name = refName(schema);
  if (name) return h("a", { href: `#schema-${name}` }, name);
  return h("pre", { tabindex: "0" }, h("code", {}, JSON.stringify(schema, null, 2)));
}

function contentView(content) {
  return Object.entries(content || {}).map(([media, body]) =>
    h("div", {}, h("code", {}, media), " ", body.schema ? schemaView(body.schema) : null),
  );
}

function operationView(path, method, op) {
  const secured = (op.security || []).length > 0;
  const params = op.parameters || [];
  return h(
    "details",
    { class: "op", dataset: { search: `${method} ${path} ${op.summary || ""} ${(op.tags || []).join(" ")}`.toLowerCase() } },
    h(
      "summary",
      {},
      h("span", { class: `method ${method}` }, method),
      h("span", { class: "path" }, path),
      h("span", { class: "meta" }, op.summary || ""),
      h("span", { class: "tag" }, secured ? t("docs.key") : t("docs.public")),
    ),
    h(
      "div",
      {},
      op.description ? h("p", { class: "desc" }, op.description) : null,
      params.length
        ? table(
            ["name", "in", "required", "schema"],
            params.map((p) => [p.name, p.in, p.required ? "yes" : "", JSON.stringify(p.schema || {})]),
            t("docs.parameters"),
          )
        : null,
      op.requestBody ? [h("h4", {}, t("docs.request")), contentView(op.requestBody.content)] : null,
      h("h4", {}, t("docs.responses")),
      h(
        "ul",
        {},
        Object.entries(op.responses || {}).map(([status, answer]) =>
          h("li", {}, h("strong", {}, status), " ", answer.description || "", contentView(answer.content)),
        ),
      ),
    ),
  );
}

function render(root, doc) {
  const filter = h("input", { type: "search", name: "filter" });
  const groups = new Map();
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const tag = (op.tags && op.tags[0]) || "other";
      if (!groups.has(tag)) groups.set(tag, []);
      groups.get(tag).push(operationView(path, method, op));
    }
  }
  const json = JSON.stringify(doc, null, 2);
  const save = h("button", { type: "button", class: "secondary", onclick: () => download("openapi.json", json) }, t("docs.download"));
  const schemas = Object.entries((doc.components || {}).schemas || {}).map(([name, schema]) =>
    h("details", { class: "op", id: `schema-${name}` }, h("summary", {}, h("span", { class: "path" }, name)), h("div", {}, schemaView(schema))),
  );
  fill(root, 
    h(
      "section",
      { class: "card", "aria-labelledby": "docs-title" },
      h("h1", { id: "docs-title" }, `${doc.info.title} ${doc.info.version} · ${t("docs.title")}`),
      h("p", {}, doc.info.description || ""),
      h("div", { class: "row" }, field(t("docs.filter"), filter), save),
    ),
    [...groups.entries()].map(([tag, ops]) => h("section", { class: "group", "aria-label": tag }, h("h2", {}, tag), ops)),
    h("section", { "aria-labelledby": "schemas-title" }, h("h2", { id: "schemas-title" }, t("docs.schemas")), schemas),
  );
  filter.addEventListener("input", () => {
    const words = filter.value.toLowerCase().trim();
    for (const op of root.querySelectorAll("details.op[data-search]")) op.hidden = words !== "" && !op.dataset.search.includes(words);
    for (const group of root.querySelectorAll("section.group")) group.hidden = !group.querySelector("details.op:not([hidden])");
  });
  // A link to a schema opens it.
  window.addEventListener("hashchange", () => {
    const target = document.getElementById(location.hash.slice(1));
    if (target && target.tagName === "DETAILS") target.open = true;
  });
}

async function start() {
  const select = document.getElementById("lang");
  const root = document.getElementById("main");
  const status = document.getElementById("status");
  select.value = currentLanguage();
  translate(document);
  let doc = null;
  async function show() {
    if (doc) {
      render(root, doc);
      return;
    }
    status.textContent = t("docs.loading");
    try {
      doc = await getJSON("/docs/openapi.json");
      status.textContent = "";
      render(root, doc);
    } catch (exc) {
      status.textContent = "";
      const message = exc instanceof ApiError && exc.status === 401 ? t("docs.needKey") : exc.message;
      fill(root, h("section", { class: "card" }, h("h1", {}, t("docs.title")), h("p", { class: "error", role: "alert" }, message), h("a", { href: "/console" }, "/console")));
    }
  }
  select.addEventListener("change", () => {
    setLanguage(select.value);
    translate(document);
    show();
  });
  show();
}

start();
