// Playground: pick a model or persona, chat with a streamed reply, see its speed, stop it, and
// see the same request as curl and as Python with the ollama client.
import { call, getJSON, ndjson } from "./api.js";
import { clear, field, h } from "./dom.js";
import { t } from "./i18n.js";

function shellQuote(text) {
  return `'${text.replace(/'/g, "'\\''")}'`;
}

export function curlOf(path, body) {
  return [
    `curl -N ${location.origin}${path} \\`,
    `  -H "Authorization: Bearer $BILLUMY_KEY" \\`,
    `  -d ${shellQuote(JSON.stringify(body))}`,
  ].join("\n");
}

export function pythonOf(model, messages, extra = {}) {
  // JSON of strings, lists and objects is a Python literal too.
  return [
    "import os",
    "",
    "from ollama import Client",
    "",
    "client = Client(",
    `    host=${JSON.stringify(location.origin)},`,
    '    headers={"Authorization": f"Bearer {os.environ[\'BILLUMY_KEY\']}"},',
    ")",
    `messages = ${JSON.stringify(messages, null, 4)}`,
    ...Object.entries(extra).map(([name, value]) => `${name} = ${JSON.stringify(value, null, 4).replace(/\btrue\b/g, "True").replace(/\bfalse\b/g, "False").replace(/\bnull\b/g, "None")}`),
    `for part in client.chat(model=${JSON.stringify(model)}, messages=messages${Object.keys(extra).map((n) => `, ${n}=${n}`).join("")}, stream=True):`,
    '    print(part.message.content, end="", flush=True)',
  ].join("\n");
}

export function render(root, { say }) {
  const model = h("select", { name: "model", required: true });
  const system = h("textarea", { name: "system", rows: 2 });
  const keep = h("input", { type: "checkbox", name: "keep", checked: true });
  const prompt = h("textarea", { name: "prompt", rows: 3, required: true });
  const options = h("textarea", { name: "options", rows: 2, spellcheck: "false" });
  const format = h("textarea", { name: "format", rows: 2, spellcheck: "false" });
  const send = h("button", { type: "submit" }, t("play.send"));
  const stop = h("button", { type: "button", class: "secondary", disabled: true }, t("play.stop"));
  const fresh = h("button", { type: "button", class: "secondary" }, t("play.new"));
  const transcript = h("ol", { class: "transcript", "aria-live": "polite", "aria-label": t("play.transcript") });
  const stats = {
    tokens: h("output", {}, "–"),
    ttft: h("output", {}, "–"),
    rate: h("output", {}, "–"),
  };
  const curl = h("code", {});
  const python = h("code", {});

  let history = [];
  let chatId = null;
  let controller = null;

  const form = h(
    "form",
    { class: "card", "aria-labelledby": "play-title" },
    h("h1", { id: "play-title" }, t("nav.playground")),
    h(
      "div",
      { class: "row" },
      field(t("play.model"), model),
      h("div", { class: "field check" }, h("label", {}, keep, " ", t("play.keep"))),
    ),
    field(t("play.system"), system),
    h(
      "details",
      { class: "advanced" },
      h("summary", {}, t("play.advanced")),
      field(t("play.options"), options, t("play.optionsHint")),
      field(t("play.format"), format, t("play.formatHint")),
    ),
    transcript,
    field(t("play.message"), prompt, t("play.hint")),
    h("div", { class: "actions" }, send, stop, fresh),
    h(
      "dl",
      { class: "stats" },
      h("dt", {}, t("play.tokens")),
      h("dd", {}, stats.tokens),
      h("dt", {}, t("play.ttft")),
      h("dd", {}, stats.ttft),
      h("dt", {}, t("play.rate")),
      h("dd", {}, stats.rate),
    ),
  );
  const code = h(
    "section",
    { class: "card", "aria-labelledby": "code-title" },
    h("h2", { id: "code-title" }, t("play.request")),
    h("h3", {}, "curl"),
    h("pre", { tabindex: "0" }, curl),
    h("h3", {}, t("play.python")),
    h("pre", { tabindex: "0" }, python),
  );
  root.append(h("div", { class: "grid" }, form, code));

  // The options and format fields as JSON (absent when empty); a SyntaxError names the field.
  function extra() {
    const out = {};
    for (const [name, control] of [["options", options], ["format", format]]) {
      const text = control.value.trim();
      if (!text) continue;
      try {
        out[name] = JSON.parse(text);
      } catch {
        throw new SyntaxError(`${t(`play.${name}`)}: ${t("play.badJson")}`);
      }
    }
    return out;
  }

  function request() {
    const messages = [];
    if (system.value.trim()) messages.push({ role: "system", content: system.value.trim() });
    messages.push(...history, { role: "user", content: prompt.value });
    return { model: model.value, messages, ...extra() };
  }

  function showCode() {
    let body;
    try {
      body = request();
    } catch (exc) {
      curl.textContent = python.textContent = exc.message;
      return;
    }
    const { model: name, messages, ...more } = body;
    if (keep.checked) {
      // A stored chat: made once (POST /chats), then each message goes to it.
      const system_ = messages.filter((m) => m.role === "system");
      const create = chatId
        ? ""
        : `${curlOf("/chats", { user_id: "console", model: name, messages: system_ })}\n# ${t("play.thenId")}\n`;
      const path = `/chats/${chatId || "$CHAT_ID"}/messages`;
      curl.textContent = create + curlOf(path, { content: prompt.value, ...more, stream: true });
    } else {
      curl.textContent = curlOf("/api/chat", { ...body, stream: true });
    }
    python.textContent = pythonOf(name, messages, more);
  }

  function bubble(role, text) {
    const body = h("div", { class: "content" }, text);
    const item = h("li", { class: `msg ${role}` }, h("span", { class: "role" }, t(`role.${role}`)), body);
    transcript.append(item);
    return body;
  }

  function reset() {
    if (controller) controller.abort();
    history = [];
    chatId = null;
    clear(transcript);
    for (const out of Object.values(stats)) out.textContent = "–";
    showCode();
  }

  async function open() {
    if (!keep.checked) return null;
    if (chatId) return chatId;
    const messages = system.value.trim() ? [{ role: "system", content: system.value.trim() }] : [];
    const chat = await getJSON("/chats", {
      method: "POST",
      json: {
        user_id: "console",
        model: model.value,
        title: prompt.value.trim().slice(0, 80),
        messages,
        tags: ["console"],
      },
    });
    chatId = chat.id;
    return chatId;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = prompt.value;
    if (!text.trim() || controller) return;
    let body;
    try {
      body = request();
    } catch (exc) {
      say(exc.message, "error");
      return;
    }
    const { model: _model, messages: _messages, ...more } = body;
    showCode();
    bubble("user", text);
    const answer = bubble("assistant", "");
    answer.parentElement.setAttribute("aria-busy", "true");
    controller = new AbortController();
    send.disabled = true;
    stop.disabled = false;
    for (const out of Object.values(stats)) out.textContent = "…";
    const started = performance.now();
    let first = null;
    let pieces = 0;
    let final = null;
    try {
      const id = await open();
      const response = id
        ? await call(`/chats/${id}/messages`, {
            method: "POST",
            json: { content: text, ...more, stream: true },
            signal: controller.signal,
          })
        : await call("/api/chat", { method: "POST", json: { ...body, stream: true }, signal: controller.signal });
      prompt.value = "";
      for await (const chunk of ndjson(response)) {
        if (chunk.error) throw new Error(chunk.error);
        const piece = chunk.message ? chunk.message.content : "";
        if (piece) {
          if (first === null) {
            first = performance.now();
            stats.ttft.textContent = `${Math.round(first - started)} ms`;
          }
          pieces += 1;
          answer.textContent += piece;
          stats.tokens.textContent = String(pieces);
        }
        if (chunk.done) final = chunk;
      }
      if (final && final.eval_count) {
        stats.tokens.textContent = String(final.eval_count);
        const seconds = final.eval_duration / 1e9;
        if (seconds > 0) stats.rate.textContent = (final.eval_count / seconds).toFixed(1);
      }
      history.push({ role: "user", content: text }, { role: "assistant", content: answer.textContent });
      say(t("play.done"));
    } catch (exc) {
      if (exc.name === "AbortError") {
        answer.parentElement.classList.add("stopped");
        answer.parentElement.append(h("em", { class: "note" }, t("play.stopped")));
        history.push({ role: "user", content: text }, { role: "assistant", content: answer.textContent });
        say(t("play.stopped"));
      } else {
        answer.parentElement.classList.add("failed");
        answer.textContent = exc.message;
        say(exc.message, "error");
      }
    } finally {
      if (first === null) stats.ttft.textContent = "–";
      if (stats.rate.textContent === "…" && first !== null && pieces > 1) {
        const seconds = (performance.now() - first) / 1000;
        stats.rate.textContent = seconds > 0 ? ((pieces - 1) / seconds).toFixed(1) : "–";
      } else if (stats.rate.textContent === "…") stats.rate.textContent = "–";
      if (stats.tokens.textContent === "…") stats.tokens.textContent = String(pieces);
      answer.parentElement.removeAttribute("aria-busy");
      controller = null;
      send.disabled = false;
      stop.disabled = true;
      showCode();
      prompt.focus();
    }
  });

  stop.addEventListener("click", () => {
    if (controller) controller.abort();
  });
  fresh.addEventListener("click", reset);
  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  for (const control of [model, system, prompt, options, format]) control.addEventListener("input", showCode);
  model.addEventListener("change", reset);
  keep.addEventListener("change", reset);

  getJSON("/api/tags")
    .then((tags) => {
      clear(model);
      for (const entry of tags.models || []) {
        model.append(h("option", { value: entry.name }, entry.name));
      }
      showCode();
    })
    .catch((exc) => say(exc.message, "error"));

  return () => {
    if (controller) controller.abort();
  };
}
