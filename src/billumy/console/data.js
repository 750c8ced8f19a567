// Data: upload a CSV, JSON or Parquet file to the datasets API, see its profile, ask a
// question, and see the answer, the facts with their SQL, the server's charts (SVG) and the
// questions asked before across the dataset's versions.
import { call, getJSON } from "./api.js";
import { clear, fill, field, h, table } from "./dom.js";
import { formatDate, t } from "./i18n.js";

const CURRENT = "billumy.dataset";

function cell(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toFixed(4).replace(/\.?0+$/, "");
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

// Rows of objects as a table of their keys (the first row's, then any new ones).
export function objectTable(rows, caption) {
  const keys = [];
  for (const row of rows) for (const key of Object.keys(row)) if (!keys.includes(key)) keys.push(key);
  return table(keys, rows.map((row) => keys.map((key) => cell(row[key]))), caption);
}

// What moved since the same question was asked of the dataset's previous version.
function changesView(changes) {
  if (!changes || !changes.length) return null;
  const [head, ...moved] = changes;
  return h(
    "section",
    { class: "changes", "aria-labelledby": "changes-title" },
    h("h3", { id: "changes-title" }, `${t("data.changes")} ${head.previous_version}`),
    moved.length
      ? h(
          "ul",
          {},
          moved.map((c) =>
            h(
              "li",
              {},
              h("span", { class: "tag" }, t(`data.change.${c.change}`)),
              " ",
              c.statement,
              c.previous_statement ? h("span", { class: "meta" }, ` (${t("data.before")}: ${c.previous_statement})`) : null,
            ),
          ),
        )
      : h("p", { class: "meta" }, t("data.noChanges")),
  );
}

export function render(root, { say }) {
  const file = h("input", { type: "file", name: "file", accept: ".csv,.json,.parquet,.tsv,text/csv,application/json", required: true });
  const name = h("input", { type: "text", name: "name", maxlength: 200 });
  const asVersion = h("input", { type: "checkbox", name: "version" });
  const versionLabel = h("div", { class: "field check", hidden: true }, h("label", {}, asVersion, " ", t("data.asVersion")));
  const upload = h(
    "form",
    { class: "card", "aria-labelledby": "data-title" },
    h("h1", { id: "data-title" }, t("nav.data")),
    field(t("data.file"), file, t("data.formats")),
    field(t("data.name"), name),
    versionLabel,
    h("div", { class: "actions" }, h("button", { type: "submit" }, t("data.upload"))),
  );
  const datasetView = h("section", { class: "card", "aria-labelledby": "dataset-title", hidden: true });
  const question = h("input", { type: "text", name: "question", maxlength: 4000, required: true });
  const ask = h(
    "form",
    { class: "card", "aria-labelledby": "ask-title", hidden: true },
    h("h2", { id: "ask-title" }, t("data.ask")),
    field(t("data.question"), question, t("data.example")),
    h("div", { class: "actions" }, h("button", { type: "submit" }, t("data.askButton"))),
  );
  const answerView = h("section", { class: "card answer", "aria-labelledby": "answer-title", "aria-live": "polite", hidden: true });
  const historyView = h("section", { class: "card", "aria-labelledby": "history-title", hidden: true });
  root.append(h("div", { class: "stack" }, upload, datasetView, ask, answerView, historyView));

  let dataset = null;
  const blobs = [];

  function showDataset(found) {
    dataset = found;
    sessionStorage.setItem(CURRENT, found.id);
    versionLabel.hidden = false;
    const columns = found.columns || [];
    const profile = columns.length && typeof columns[0] === "object"
      ? objectTable(columns, t("data.profile"))
      : table([t("data.column")], columns.map((c) => [cell(c)]), t("data.profile"));
    fill(datasetView, 
      h("h2", { id: "dataset-title" }, found.name || found.id),
      h(
        "dl",
        { class: "facts-list" },
        h("dt", {}, "id"), h("dd", {}, h("code", {}, found.id)),
        h("dt", {}, t("data.version")), h("dd", {}, String(found.version)),
        h("dt", {}, t("data.rows")), h("dd", {}, String(found.rows)),
      ),
      profile,
      objectTable((found.versions || []).map((v) => ({ [t("data.version")]: v.version, [t("data.rows")]: v.rows, bytes: v.bytes, [t("data.created")]: formatDate(v.created_at), hash: String(v.hash).slice(0, 12) })), t("data.versions")),
    );
    datasetView.hidden = false;
    ask.hidden = false;
    history();
  }

  async function chart(insightId, number, title) {
    const response = await call(`/api/insights/${encodeURIComponent(insightId)}/charts/${number}.svg`);
    const url = URL.createObjectURL(await response.blob());
    blobs.push(url);
    return h("figure", { class: "chart" }, h("img", { src: url, alt: title || t("data.chart") }), title ? h("figcaption", {}, title) : null);
  }

  async function showInsight(record) {
    const answer = record.answer || {};
    const facts = record.facts || [];
    const insights = record.insights || [];
    // The server numbers its charts: the model's insights' first, then the answer's.
    const titles = [
      ...insights.filter((i) => i.chart).map((i) => i.title),
      ...(record.answer_charts || []).map((spec) => (spec.title && spec.title.text) || ""),
    ];
    const figures = [];
    for (const [number, title] of titles.entries()) {
      try {
        figures.push(await chart(record.id, number, title));
      } catch (exc) {
        say(exc.message, "error");
      }
    }
    fill(answerView, 
      h("h2", { id: "answer-title" }, t("data.answer")),
      record.question ? h("p", { class: "meta" }, record.question) : null,
      h("p", { class: "answer-text" }, answer.text || record.summary || ""),
      figures.length ? h("div", { class: "charts" }, figures) : h("p", { class: "meta" }, t("data.noChart")),
      record.profile && record.profile.columns
        ? h(
            "details",
            {},
            h("summary", {}, t("data.fullProfile")),
            objectTable(
              record.profile.columns.map(({ top, ...column }) => ({
                ...column,
                top: (top || []).map((v) => `${v.value} (${v.count})`).join(", "),
              })),
              t("data.fullProfile"),
            ),
          )
        : null,
      changesView(record.changes),
      h("h3", {}, t("data.facts")),
      h(
        "ol",
        { class: "facts" },
        facts.map((fact) =>
          h(
            "li",
            {},
            h("p", {}, h("span", { class: "tag" }, fact.kind || ""), " ", fact.statement || ""),
            fact.sql ? h("details", {}, h("summary", {}, t("data.sql")), h("pre", { tabindex: "0" }, h("code", {}, fact.sql))) : null,
          ),
        ),
      ),
      insights.length
        ? h("h3", {}, t("data.insights"))
        : null,
      insights.length
        ? h("ul", {}, insights.map((i) => h("li", {}, h("strong", {}, i.title || ""), " ", i.text || "", i.verified ? h("span", { class: "tag ok" }, t("data.verified")) : null)))
        : null,
    );
    answerView.hidden = false;
  }

  async function history() {
    if (!dataset) return;
    try {
      const found = await getJSON("/api/insights?limit=200");
      const mine = (found.insights || []).filter((brief) => {
        const ds = brief.dataset;
        return ds && (ds === dataset.id || ds.id === dataset.id);
      });
      const list = h(
        "ol",
        { class: "history" },
        mine.map((brief) =>
          h(
            "li",
            {},
            h(
              "button",
              { type: "button", class: "link", onclick: async () => showInsight(await getJSON(`/api/insights/${encodeURIComponent(brief.id)}`)) },
              brief.question || t("data.noQuestion"),
            ),
            h("span", { class: "meta" }, ` · ${t("data.version")} ${brief.dataset && brief.dataset.version !== undefined ? brief.dataset.version : "?"} · ${formatDate(brief.created_at)}`),
            brief.summary ? h("p", { class: "summary" }, brief.summary.split("\n\n")[0].replace(/ ?\[f\d+\]/g, "")) : null,
          ),
        ),
      );
      fill(historyView, 
        h("h2", { id: "history-title" }, t("data.history")),
        mine.length ? list : h("p", { class: "meta" }, t("data.noHistory")),
      );
      historyView.hidden = false;
    } catch (exc) {
      say(exc.message, "error");
    }
  }

  upload.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!file.files.length) return;
    const form = new FormData();
    form.append("file", file.files[0]);
    if (name.value.trim()) form.append("name", name.value.trim());
    if (asVersion.checked && dataset) form.append("dataset_id", dataset.id);
    say(t("data.uploading"));
    try {
      const created = await getJSON("/datasets", { method: "POST", body: form });
      showDataset(created);
      say(created.new_version ? t("data.uploaded") : t("data.same"));
      question.focus();
    } catch (exc) {
      say(exc.message, "error");
    }
  });

  ask.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!dataset || !question.value.trim()) return;
    const button = ask.querySelector("button");
    button.disabled = true;
    answerView.setAttribute("aria-busy", "true");
    say(t("data.thinking"));
    try {
      const record = await getJSON("/api/insights", {
        method: "POST",
        json: { dataset_id: dataset.id, question: question.value.trim() },
      });
      await showInsight({ ...record, question: question.value.trim() });
      say(t("data.answered"));
      history();
    } catch (exc) {
      say(exc.message, "error");
    } finally {
      button.disabled = false;
      answerView.removeAttribute("aria-busy");
    }
  });

  const remembered = sessionStorage.getItem(CURRENT);
  if (remembered) {
    getJSON(`/datasets/${encodeURIComponent(remembered)}`).then(showDataset).catch(() => sessionStorage.removeItem(CURRENT));
  }

  return () => {
    for (const url of blobs) URL.revokeObjectURL(url);
  };
}
