// Conversations: the stored chats of the key's tenant; search (full text), read, export as
// JSON, delete.
import { call, getJSON } from "./api.js";
import { clear, fill, download, field, h } from "./dom.js";
import { formatDate, t } from "./i18n.js";

export function render(root, { say }) {
  const query = h("input", { type: "search", name: "q", maxlength: 500 });
  const list = h("ul", { class: "chats", "aria-label": t("chats.list") });
  const more = h("button", { type: "button", class: "secondary", hidden: true }, t("chats.more"));
  const reader = h("section", { class: "card reader", "aria-labelledby": "chat-title", tabindex: "-1" });
  let cursor = null;

  const search = h(
    "form",
    { class: "card", role: "search", "aria-labelledby": "chats-title" },
    h("h1", { id: "chats-title" }, t("nav.conversations")),
    h("div", { class: "row" }, field(t("chats.search"), query), h("button", { type: "submit" }, t("chats.find"))),
    list,
    more,
  );
  root.append(h("div", { class: "grid" }, search, reader));

  async function load(append = false) {
    const params = new URLSearchParams({ limit: "25" });
    if (query.value.trim()) params.set("q", query.value.trim());
    if (append && cursor) params.set("cursor", cursor);
    try {
      const page = await getJSON(`/chats?${params}`);
      if (!append) clear(list);
      for (const chat of page.chats) list.append(item(chat));
      if (!page.chats.length && !append) list.append(h("li", { class: "empty" }, t("chats.none")));
      cursor = page.next_cursor;
      more.hidden = !cursor;
    } catch (exc) {
      say(exc.message, "error");
    }
  }

  function item(chat) {
    const button = h(
      "button",
      { type: "button", class: "chat-link", onclick: () => open(chat.id) },
      h("strong", {}, chat.title || t("chats.untitled")),
      h("span", { class: "meta" }, `${chat.model} · ${chat.message_count} ${t("chats.messages")} · ${formatDate(chat.updated_at)}`),
    );
    return h("li", { dataset: { chat: chat.id } }, button);
  }

  async function open(id) {
    try {
      const chat = await getJSON(`/chats/${encodeURIComponent(id)}`);
      show(chat);
    } catch (exc) {
      say(exc.message, "error");
    }
  }

  function show(chat) {
    const exportButton = h("button", { type: "button", class: "secondary" }, t("chats.export"));
    const deleteButton = h("button", { type: "button", class: "danger" }, t("chats.delete"));
    exportButton.addEventListener("click", async () => {
      try {
        const response = await call(`/chats/${encodeURIComponent(chat.id)}/export?format=json`);
        download(`chat-${chat.id}.json`, await response.text());
      } catch (exc) {
        say(exc.message, "error");
      }
    });
    deleteButton.addEventListener("click", async () => {
      if (!window.confirm(t("chats.confirm"))) return;
      try {
        await call(`/chats/${encodeURIComponent(chat.id)}`, { method: "DELETE" });
        clear(reader);
        say(t("chats.deleted"));
        load();
      } catch (exc) {
        say(exc.message, "error");
      }
    });
    fill(reader, 
      h("h2", { id: "chat-title" }, chat.title || t("chats.untitled")),
      h("p", { class: "meta" }, `${chat.model} · ${chat.user_id} · ${formatDate(chat.created_at)}`),
      h(
        "ol",
        { class: "transcript" },
        (chat.messages || []).map((m) =>
          h(
            "li",
            { class: `msg ${m.role}${m.incomplete ? " stopped" : ""}` },
            h("span", { class: "role" }, t(`role.${m.role}`)),
            h("div", { class: "content" }, m.content),
            m.incomplete ? h("em", { class: "note" }, t("play.stopped")) : null,
          ),
        ),
      ),
      h("div", { class: "actions" }, exportButton, deleteButton),
    );
    reader.focus();
  }

  search.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  more.addEventListener("click", () => load(true));
  load();
}
