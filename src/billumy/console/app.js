// The console's shell: sign-in, the language switch, and the pages by the URL's hash.
import { call, forgetKey, getKey, setKey, whenUnauthorized } from "./api.js";
import { clear, fill, field, h } from "./dom.js";
import { currentLanguage, setLanguage, t, translate } from "./i18n.js";
import * as conversations from "./conversations.js";
import * as data from "./data.js";
import * as playground from "./playground.js";
import * as server from "./server.js";

// Each page: render(main) builds it, and may return a function that stops its timers.
// The admin API's Keys and usage page goes here as `keys` (and in the nav of index.html).
const PAGES = { playground, conversations, data, server };

const main = () => document.getElementById("main");
let leave = null;

export function say(message, kind = "info") {
  const status = document.getElementById("status");
  status.textContent = message;
  status.dataset.kind = kind;
}

function signIn(message) {
  const input = h("input", {
    type: "password",
    name: "key",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
  });
  const error = h("p", { class: "error", role: "alert" }, message || "");
  const form = h(
    "form",
    { class: "card signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, t("signin.title")),
    h("p", {}, t("signin.why")),
    field(t("signin.key"), input),
    error,
    h("button", { type: "submit" }, t("signin.submit")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    setKey(key);
    try {
      await call("/api/tags", { signingIn: true });
      input.value = "";
      if (!location.hash || location.hash === "#/") location.hash = "#/playground";
      show();
    } catch (exc) {
      forgetKey();
      error.textContent = exc.status === 401 ? t("signin.refused") : exc.message;
    }
  });
  document.getElementById("nav").hidden = true;
  document.getElementById("signout").hidden = true;
  fill(main(), form);
  input.focus();
}

function show() {
  if (leave) {
    leave();
    leave = null;
  }
  if (!getKey()) {
    signIn();
    return;
  }
  document.getElementById("nav").hidden = false;
  document.getElementById("signout").hidden = false;
  const name = (location.hash.replace(/^#\/?/, "").split("/")[0] || "playground").toLowerCase();
  const page = PAGES[name] || playground;
  for (const link of document.querySelectorAll("#nav a[data-page]")) {
    if (link.dataset.page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const root = clear(main());
  document.title = `${t(`nav.${name in PAGES ? name : "playground"}`)} · Billumy`;
  say("");
  leave = page.render(root, { say }) || null;
}

function start() {
  const select = document.getElementById("lang");
  select.value = currentLanguage();
  translate(document);
  select.addEventListener("change", () => {
    setLanguage(select.value);
    translate(document);
    show();
  });
  document.getElementById("signout").addEventListener("click", () => {
    forgetKey();
    signIn();
  });
  whenUnauthorized(() => {
    forgetKey();
    signIn(t("signin.expired"));
  });
  window.addEventListener("hashchange", show);
  show();
}

start();
