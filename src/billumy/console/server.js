// Server: the models loaded (/api/ps), the queue and the engine (/ready), the upstream
// deployments and their circuits (/ready and /metrics), refreshed every few seconds.
import { ApiError, call, getJSON } from "./api.js";
import { clear, fill, h, table } from "./dom.js";
import { formatDate, t } from "./i18n.js";

const EVERY_MS = 3000;

// Prometheus text: {name: [{labels, value}]}, the samples this page shows.
export function parseMetrics(text) {
  const out = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    for (const pair of (match[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    (out[match[1]] ||= []).push({ labels, value: Number(match[3]) });
  }
  return out;
}

function one(metrics, name) {
  const samples = metrics[name];
  return samples && samples.length ? samples[0].value : null;
}

export function render(root, { say }) {
  const summary = h("dl", { class: "facts-list" });
  const models = h("div", {});
  const upstreams = h("div", {});
  const updated = h("p", { class: "meta", "aria-live": "off" });
  root.append(
    h(
      "div",
      { class: "stack" },
      h("section", { class: "card", "aria-labelledby": "server-title" }, h("h1", { id: "server-title" }, t("nav.server")), summary, updated),
      h("section", { class: "card", "aria-labelledby": "models-title" }, h("h2", { id: "models-title" }, t("server.models")), models),
      h("section", { class: "card", "aria-labelledby": "up-title" }, h("h2", { id: "up-title" }, t("server.upstreams")), upstreams),
    ),
  );

  async function refresh() {
    try {
      const [ready, ps, metricsText] = await Promise.all([
        fetch("/ready", { credentials: "omit" }).then((r) => r.json()),
        getJSON("/api/ps"),
        call("/metrics").then((r) => r.text()).catch((exc) => {
          if (exc instanceof ApiError && exc.status === 403) return null;
          throw exc;
        }),
      ]);
      const metrics = metricsText === null ? null : parseMetrics(metricsText);
      const engine = ready.engine || {};
      const rows = [
        [t("server.status"), ready.status],
        [t("server.queue"), String(metrics ? one(metrics, "billumy_queue_depth") : ready.queue_depth)],
        [t("server.engine"), `${engine.state || "?"}${engine.pid ? ` (pid ${engine.pid})` : ""}`],
        [t("server.store"), ready.store],
        ["Redis", ready.redis],
      ];
      if (metrics) {
        const restarts = one(metrics, "billumy_engine_restarts_total");
        if (restarts !== null) rows.push([t("server.restarts"), String(restarts)]);
      }
      fill(summary, rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", { dataset: { name: k } }, v)]));
      const loaded = ps.models || [];
      fill(models, 
        loaded.length
          ? table(
              [t("server.model"), t("server.size"), t("server.expires")],
              loaded.map((m) => [m.name, m.size ? `${(m.size / 1e6).toFixed(0)} MB` : "", m.expires_at ? formatDate(m.expires_at) : ""]),
              t("server.models"),
            )
          : h("p", { class: "meta" }, t("server.noModels")),
      );
      const names = Object.keys(ready.upstreams || {});
      const byName = {};
      if (metrics) {
        for (const s of metrics.billumy_upstream_in_flight || []) (byName[s.labels.deployment] ||= {}).inFlight = s.value;
        for (const s of metrics.billumy_upstream_served_total || []) (byName[s.labels.deployment] ||= {}).served = s.value;
        for (const s of metrics.billumy_upstream_healthy || []) (byName[s.labels.deployment] ||= {}).model = s.labels.model;
      }
      fill(upstreams, 
        names.length
          ? table(
              [t("server.deployment"), t("server.model"), t("server.circuit"), t("server.inFlight"), t("server.served")],
              names.map((n) => [n, (byName[n] || {}).model ?? "", ready.upstreams[n], String((byName[n] || {}).inFlight ?? ""), String((byName[n] || {}).served ?? "")]),
              t("server.upstreams"),
            )
          : h("p", { class: "meta" }, t("server.noUpstreams")),
        metrics ? null : h("p", { class: "meta" }, t("server.noMetrics")),
      );
      updated.textContent = `${t("server.updated")} ${new Date().toLocaleTimeString()}`;
    } catch (exc) {
      say(exc.message, "error");
    }
  }

  refresh();
  const timer = setInterval(refresh, EVERY_MS);
  return () => clearInterval(timer);
}
