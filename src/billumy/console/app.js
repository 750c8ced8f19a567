// The console's shell: sign-in, the language switch, and the pages by the URL's hash.
import { call, forgetKey, getKey, setKey, whenUnauthorized } from "./api.js";
import { clear, fill, field, h } from "./dom.js";
import { currentLanguage, setLanguage, t, translate } from "./i18n.js";
import * as conversations from "./conversations.js";
import * as data from "./data.js";
import * as keys from "./keys.js";
import * as playground from "./playground.js";
import * as server from "./server.js";

// Each page: render(main, {say, me}) builds it, and may return a function that stops its
// timers. `keys` (the admin API's Keys & usage) is only for keys with the admin scope.
const PAGES = { playground, conversations, data, server, keys };
const ADMIN_PAGES = new Set(["keys"]);

const main = () => document.getElementById("main");
let leave = null;
// The signed-in key as GET /whoami tells it (id, name, tenant, scopes, global_admin); asked
// again after a reload, forgotten on sign-out.
let me = null;
let turn = 0;

const isAdmin = () => Boolean(me && me.scopes.includes("admin"));

export function say(message, kind = "info") {
  const status = document.getElementById("status");
  status.textContent = message;
  status.dataset.kind = kind;
}

function signIn(message) {
  me = null;
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
      me = await (await call("/whoami", { signingIn: true })).json();
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

async function show() {
  if (leave) {
    leave();
    leave = null;
  }
  if (!getKey()) {
    signIn();
    return;
  }
  const mine = ++turn;
  if (!me) {
    try {
      me = await (await call("/whoami")).json();
    } catch (exc) {
      // A 401 has signed out already (whenUnauthorized); anything else is said.
      if (exc.status !== 401) say(exc.message, "error");
      return;
    }
    if (mine !== turn) return; // another page was asked for meanwhile
  }
  document.getElementById("nav").hidden = false;
  document.getElementById("signout").hidden = false;
  document.getElementById("nav-keys").hidden = !isAdmin();
  let name = (location.hash.replace(/^#\/?/, "").split("/")[0] || "playground").toLowerCase();
  if (!(name in PAGES) || (ADMIN_PAGES.has(name) && !isAdmin())) name = "playground";
  const page = PAGES[name];
  for (const link of document.querySelectorAll("#nav a[data-page]")) {
    if (link.dataset.page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const root = clear(main());
  document.title = `${t(`nav.${name}`)} · Billumy`;
  say("");
  leave = page.render(root, { say, me }) || null;
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
