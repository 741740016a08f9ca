// The wxteams console: plain JavaScript, no framework. Every call goes to /console/api, which
// forwards to the admin and compliance APIs with the right token.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { sandbox: false, employee: "", customer: "", timelineAfter: 0, tab: "" };

// remembered keeps the tab's choices (the tab, the employee, the customer) across reloads.
const remembered = {
  get(k) { try { return sessionStorage.getItem("wxteams." + k) || ""; } catch { return ""; } },
  set(k, v) { try { sessionStorage.setItem("wxteams." + k, v || ""); } catch { /* storage off: nothing to keep */ } },
};

// call sends a console request; its errors are sentences a person can act on.
async function call(method, path, body) {
  const opts = { method, headers: { "X-Wxteams-Console": "1" } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch("/console/api" + path, opts);
  } catch {
    throw new Error("wxteams did not answer. Is it still running?");
  }
  if (resp.status === 401 && !state.sandbox) {
    location.href = "/console/login";
    throw new Error("Your session has ended: signing in again.");
  }
  const type = resp.headers.get("Content-Type") || "";
  let data = null;
  try {
    data = type.includes("application/json") ? await resp.json() : await resp.blob();
  } catch {
    data = null;
  }
  if (!resp.ok) {
    const said = data && typeof data.error === "string" && data.error ? data.error : "";
    throw new Error(said ? sentence(said) : "wxteams answered " + resp.status + " " + (resp.statusText || "") + " and gave no reason.");
  }
  return data;
}

// sentence makes an API message read as a sentence.
function sentence(s) {
  s = s.trim();
  s = s.charAt(0).toUpperCase() + s.slice(1);
  return /[.!?]$/.test(s) ? s : s + ".";
}

function showError(err) {
  const box = $("error");
  if (!err) { box.hidden = true; box.textContent = ""; return; }
  box.textContent = err.message || String(err);
  box.hidden = false;
}

async function run(fn) {
  try { showError(null); await fn(); } catch (err) { showError(err); }
}

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const c of children) if (c !== null && c !== undefined && c !== "") node.append(c);
  return node;
}

const when = (t) => new Date(t).toISOString().replace("T", " ").slice(0, 19);

// setText changes a node's text only when it differs, so a selection in it survives refreshes.
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

// ---- Durations in words ---------------------------------------------------------------------

const goDuration = /^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$/;

// seconds parses a Go duration ("52608h0m0s", "90m", "2s"); NaN if it is not one.
function seconds(s) {
  if (typeof s !== "string" || s === "" || s === "0") return s === "0" || s === "0s" ? 0 : NaN;
  const m = goDuration.exec(s);
  if (!m || m[0] === "") return NaN;
  const [h, min, sec, ms] = m.slice(1).map((v) => Number(v || 0));
  return h * 3600 + min * 60 + sec + ms / 1000;
}

const plural = (n, unit) => n + " " + unit + (n === 1 ? "" : "s");

// inWords says a duration as people do: "6 years (2192 days)", "48 hours", "2 seconds".
function inWords(total) {
  if (total === 0) return "none";
  const day = 86400;
  const days = total / day;
  if (Number.isInteger(days) && days >= 365) {
    const years = Math.round(days / 365.25);
    if (Math.abs(days - years * 365.25) <= 2) return plural(years, "year") + " (" + days + " days)";
    return days + " days";
  }
  if (Number.isInteger(days) && days > 2) return plural(days, "day");
  if (total % 3600 === 0) return plural(total / 3600, "hour");
  if (total % 60 === 0) return plural(total / 60, "minute");
  if (total >= 1 && Number.isInteger(total)) return plural(total, "second");
  return Math.round(total * 1000) + " ms";
}

// ---- Tabs -------------------------------------------------------------------------------------

function openTab(name) {
  state.tab = name;
  remembered.set("tab", name);
  for (const b of document.querySelectorAll(".tab")) b.setAttribute("aria-current", b.dataset.tab === name ? "page" : "false");
  for (const p of document.querySelectorAll(".panel")) p.hidden = p.id !== name;
  if (name === "users") run(loadUsers);
  if (name === "compliance") { run(loadExports); run(loadHolds); }
  if (name === "policy") run(loadPolicy);
  if (name === "sandbox") tick();
}

// ---- Sandbox ----------------------------------------------------------------------------------

// fillSelect sets a select's options, touching it only when they changed (an open list stays
// open), and keeps the chosen value when it is still offered, else want.
function fillSelect(select, options, want) {
  const sig = JSON.stringify(options);
  if (select.dataset.sig !== sig) {
    const keep = select.value || want;
    select.replaceChildren(...options.map(([value, label]) => el("option", { value, textContent: label })));
    select.dataset.sig = sig;
    if (options.some(([v]) => v === keep)) select.value = keep;
  }
  if (!select.value && want && options.some(([v]) => v === want)) select.value = want;
}

async function refreshState() {
  const st = await call("GET", "/sandbox/state");
  setText($("now"), when(st.now) + " UTC");
  setText($("jumped"), st.jumped !== "0s" ? "(clock moved " + inWords(seconds(st.jumped)) + ")" : "");
  const enabled = st.employees.filter((e) => e.enabled);
  fillSelect($("employee"), st.employees.map((e) => [e.id, e.name + (e.enabled ? "" : " (WeChat not enabled)")]),
    state.employee || (enabled[0] && enabled[0].id));
  fillSelect($("scan-employee"), enabled.map((e) => [e.id, e.name]));
  fillSelect($("customer"), st.customers.map((c) => [c.openid, c.name]), state.customer);
  choose("employee", $("employee").value);
  choose("customer", $("customer").value);
  const me = st.customers.find((c) => c.openid === state.customer);
  setText($("chat-status"), me ? (me.chat ? "Chat: " + me.chat : "Not connected to anyone yet: scan an employee's QR code.") : "Make a customer first.");
  const emp = st.employees.find((e) => e.id === state.employee);
  const trouble = emp && emp.teams_trouble;
  setText($("teams-status"), trouble || "");
  $("teams-status").hidden = !trouble;
}

// choose makes an employee or customer the one the panes show, and remembers it.
function choose(which, value) {
  if (state[which] === value) return;
  state[which] = value;
  remembered.set(which, value);
  const list = $(which === "employee" ? "teams-messages" : "wechat-messages");
  list.replaceChildren();
}

// bubbleKey names a pane item across refreshes: the activity for what Teams shows, else its time,
// side and text.
function bubbleKey(it) {
  return it.id ? "a:" + it.id : (it.mine ? "m:" : "t:") + it.at + ":" + (it.text || "") + ":" + (it.image ? it.image.length : 0);
}

function bubble(it, who) {
  const li = el("li", { className: it.mine ? "mine" : it.failed ? "failed" : it.note ? "note" : "theirs" });
  if (it.text) li.append(el("p", { textContent: it.text }));
  if (it.image) li.append(el("img", { src: it.image, alt: "image" }));
  for (const a of it.actions || []) {
    li.append(el("button", { type: "button", className: "action", textContent: a.title,
      onclick: () => run(async () => { await call("POST", "/sandbox/teams/" + who + "/click", { activity: it.id, verb: a.verb, data: a.data }); await refreshPanes(); }) }));
  }
  li.append(el("time", { textContent: when(it.at).slice(11) }));
  return li;
}

// renderPane brings a list up to date in place: bubbles that did not change stay as they are (so
// text can be selected and a button pressed while the pane refreshes); only new or changed ones
// are drawn.
function renderPane(list, items, who) {
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  const old = new Map();
  for (const li of list.children) old.set(li.dataset.key, li);
  const seen = new Map();
  let before = list.firstElementChild;
  for (const it of items) {
    let key = bubbleKey(it);
    const n = (seen.get(key) || 0) + 1;
    seen.set(key, n);
    if (n > 1) key += "#" + n;
    const sig = JSON.stringify(it);
    let li = old.get(key);
    if (!li || li.dataset.sig !== sig) {
      const fresh = bubble(it, who);
      fresh.dataset.key = key;
      fresh.dataset.sig = sig;
      if (li) li.replaceWith(fresh);
      li = fresh;
    }
    old.delete(key);
    if (li !== before) list.insertBefore(li, before);
    before = li.nextElementSibling;
  }
  for (const li of old.values()) li.remove();
  if (atBottom) list.scrollTop = list.scrollHeight;
}

async function refreshPanes() {
  if (state.employee) renderPane($("teams-messages"), (await call("GET", "/sandbox/teams/" + state.employee)).items, state.employee);
  if (state.customer) renderPane($("wechat-messages"), (await call("GET", "/sandbox/wechat/" + state.customer)).items);
  else $("wechat-messages").replaceChildren();
}

async function refreshTimeline() {
  const items = (await call("GET", "/sandbox/timeline?after=" + state.timelineAfter)).items;
  const list = $("timeline");
  for (const r of items) {
    state.timelineAfter = Math.max(state.timelineAfter, r.id);
    list.prepend(el("li", { className: "kind-" + r.kind.replace(/\W/g, "-") },
      el("span", { className: "kind", textContent: r.kind }),
      el("span", { className: "where", textContent: r.stream + " #" + r.seq + " · " + r.actor + " · " + when(r.at).slice(5) }),
      r.text ? el("q", { textContent: r.text }) : "",
      r.detail ? el("span", { className: "detail", textContent: r.detail }) : ""));
  }
  while (list.children.length > 300) list.lastChild.remove();
}

let ticking = false;
async function tick() {
  if (state.tab !== "sandbox" || ticking) return;
  ticking = true;
  try {
    await refreshState();
    await refreshPanes();
    await refreshTimeline();
  } catch (err) { showError(err); } finally { ticking = false; }
}

// act runs a sandbox action, then refreshes at once.
function act(fn) {
  return run(async () => { await fn(); await refreshAfterAction(); });
}

async function refreshAfterAction() {
  await refreshState();
  await refreshPanes();
  await refreshTimeline();
}

function sandboxHandlers() {
  $("employee").onchange = () => { choose("employee", $("employee").value); run(refreshAfterAction); };
  $("customer").onchange = () => { choose("customer", $("customer").value); run(refreshAfterAction); };
  $("teams-form").onsubmit = (e) => { e.preventDefault(); const t = $("teams-text"); act(async () => {
    await call("POST", "/sandbox/teams/" + state.employee + "/say", { text: t.value }); t.value = ""; }); };
  $("wechat-form").onsubmit = (e) => { e.preventDefault(); const t = $("wechat-text"); act(async () => {
    if (!state.customer) throw new Error("Make a customer first.");
    await call("POST", "/sandbox/wechat/" + state.customer + "/say", { text: t.value }); t.value = ""; }); };
  $("leave").onclick = () => act(async () => {
    if (!state.customer) throw new Error("Make a customer first.");
    await call("POST", "/sandbox/wechat/" + state.customer + "/say", { text: "#LEAVE" });
  });
  $("new-customer").onclick = () => act(async () => {
    const r = await call("POST", "/sandbox/wechat", {});
    choose("customer", r.openid);
    $("customer").value = r.openid;
  });
  $("scan").onclick = () => act(async () => {
    if (!state.customer) throw new Error("Make a customer first.");
    const emp = $("scan-employee").value;
    if (!emp) throw new Error("Nobody has WeChat enabled: enable an employee on the Users page first.");
    await call("POST", "/sandbox/wechat/" + state.customer + "/scan", { employee: emp });
    choose("employee", emp);
    $("employee").value = emp;
  });
  $("advance-24h").onclick = () => act(() => call("POST", "/sandbox/clock", { advance: "24h" }));
  $("advance-48h").onclick = () => act(() => call("POST", "/sandbox/clock", { advance: "48h" }));
  setInterval(tick, 1000);
}

// ---- Users ------------------------------------------------------------------------------------

async function loadUsers() {
  const users = (await call("GET", "/admin/users")).users || [];
  const rows = [];
  for (const u of users) {
    const qr = el("td");
    if (u.wechat_enabled) {
      const img = el("img", { alt: "WeChat QR code of " + (u.name || u.id), className: "qr" });
      call("GET", "/admin/users/" + encodeURIComponent(u.id) + "/qr").then((blob) => { img.src = URL.createObjectURL(blob); }).catch(() => {});
      qr.append(img);
    }
    const toggle = el("button", { type: "button", textContent: u.wechat_enabled ? "Disable" : "Enable",
      onclick: () => run(async () => {
        await call(u.wechat_enabled ? "DELETE" : "PUT", "/admin/users/" + encodeURIComponent(u.id) + "/wechat", u.wechat_enabled ? undefined : { name: u.name });
        await loadUsers();
      }) });
    rows.push(el("tr", {}, el("td", { textContent: u.name || "—" }), el("td", { className: "id", textContent: u.id }),
      el("td", { textContent: u.wechat_enabled ? "enabled" : "not enabled" }),
      el("td", { textContent: u.teams_installed ? (u.teams_reachable ? "app installed" : "unreachable") : "not installed" }), qr, el("td", {}, toggle)));
  }
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colSpan: 6, className: "empty", textContent: "Nobody yet: enable an employee above." })));
  $("users-rows").replaceChildren(...rows);
}

function usersHandlers() {
  $("enable-form").onsubmit = (e) => { e.preventDefault(); run(async () => {
    await call("PUT", "/admin/users/" + encodeURIComponent($("enable-id").value.trim()) + "/wechat", { name: $("enable-name").value });
    $("enable-id").value = ""; $("enable-name").value = ""; await loadUsers(); }); };
}

// ---- Compliance -------------------------------------------------------------------------------

const guid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function checkEmployeeField(value) {
  if (value && !guid.test(value)) {
    throw new Error("Employee must be an Entra ID object id, such as 7faf8ab2-3d56-4244-b585-20c8a42ed2b8 (the Users page lists them); searching by name is not possible yet.");
  }
}

function searchStatus(text, isError) {
  const p = $("search-status");
  p.textContent = text;
  p.className = "status" + (isError ? " problem" : "");
}

async function search() {
  const rows = $("search-rows");
  rows.replaceChildren(); // never leave an earlier search's results under a new question
  searchStatus("Searching…");
  try {
    checkEmployeeField($("search-employee").value.trim());
    const q = new URLSearchParams();
    for (const [k, id] of [["employee", "search-employee"], ["contact", "search-contact"], ["from", "search-from"], ["to", "search-to"], ["q", "search-q"]]) {
      const v = $(id).value.trim();
      if (v) q.set(k, v);
    }
    const res = await call("GET", "/compliance/records?" + q);
    const records = Array.isArray(res.records) ? res.records : [];
    rows.replaceChildren(...records.map((r) => el("tr", {}, el("td", { textContent: when(r.at) }),
      el("td", { textContent: r.stream + " #" + r.seq }), el("td", { textContent: r.kind }), el("td", { className: "id", textContent: r.actor }),
      el("td", { textContent: r.text || "" }))));
    if (records.length === 0) {
      rows.append(el("tr", {}, el("td", { colSpan: 5, className: "empty", textContent: "No records match." })));
      searchStatus("No records match.");
    } else {
      searchStatus(plural(records.length, "record") + (res.truncated ? ", and more match: narrow the search." : "."));
    }
  } catch (err) {
    searchStatus(err.message || String(err), true);
  }
}

function complianceHandlers() {
  $("search-form").onsubmit = (e) => { e.preventDefault(); search(); };
  $("export-form").onsubmit = (e) => { e.preventDefault(); run(async () => {
    const formats = [...document.querySelectorAll("input[name=format]:checked")].map((c) => c.value);
    if (formats.length === 0) throw new Error("Choose at least one export format.");
    await call("POST", "/compliance/exports", { formats, from: $("export-from").value, to: $("export-to").value });
    await loadExports();
  }); };
  $("verify").onclick = () => run(async () => {
    const r = await call("POST", "/compliance/verify");
    $("verify-result").textContent = r.intact
      ? "Intact: " + r.records + " records and " + r.checkpoints + " signed checkpoints verified."
      : "NOT intact: " + r.problem;
  });
  $("hold-form").onsubmit = (e) => { e.preventDefault(); run(async () => {
    await call("POST", "/compliance/holds", { scope: $("hold-scope").value, subject: $("hold-subject").value, reason: $("hold-reason").value });
    $("hold-subject").value = ""; $("hold-reason").value = ""; await loadHolds(); }); };
}

const formatNames = { jsonl: "JSONL", csv: "CSV", eml: "EML", actiance: "Actiance XML" };

async function loadExports() {
  const list = (await call("GET", "/compliance/exports")).exports || [];
  const rows = list.map((x) => {
    const get = el("td");
    if (x.state === "done") {
      get.append(el("button", { type: "button", textContent: "Download", onclick: () => run(async () => {
        const blob = await call("GET", "/compliance/exports/" + x.id + "/download");
        const a = el("a", { href: URL.createObjectURL(blob), download: "wxteams-" + x.id + ".zip" });
        document.body.append(a); a.click(); a.remove();
      }) }));
    }
    const formats = (x.formats || []).map((f) => formatNames[f] || f).join(", ");
    return el("tr", {}, el("td", { className: "id", textContent: x.id }), el("td", { textContent: x.state + (x.error ? ": " + x.error : "") }),
      el("td", { textContent: formats }), el("td", { className: "num", textContent: x.records === undefined ? "" : String(x.records) }), get);
  });
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colSpan: 5, className: "empty", textContent: "No exports yet." })));
  $("export-rows").replaceChildren(...rows);
  // While an export is being written, look again each second until it is done.
  clearTimeout(exportsTimer);
  if (list.some((x) => x.state === "running")) exportsTimer = setTimeout(() => { if (state.tab === "compliance") loadExports().catch(showError); }, 1000);
}
let exportsTimer = 0;

async function loadHolds() {
  const holds = (await call("GET", "/compliance/holds")).holds || [];
  const rows = holds.map((h) => el("tr", {}, el("td", { textContent: h.id }), el("td", { textContent: h.scope }),
    el("td", { className: "id", textContent: h.subject }), el("td", { textContent: h.reason }), el("td", { textContent: when(h.placed_at) + " by " + h.placed_by }),
    el("td", {}, el("button", { type: "button", textContent: "Lift", onclick: () => run(async () => {
      const reason = prompt("Why is the hold lifted?");
      if (!reason) return;
      await call("DELETE", "/compliance/holds/" + h.id + "?reason=" + encodeURIComponent(reason)); await loadHolds(); }) }))));
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colSpan: 6, className: "empty", textContent: "No legal holds." })));
  $("hold-rows").replaceChildren(...rows);
}

// ---- Policy -----------------------------------------------------------------------------------

const languages = { en: "English", "zh-CN": "Simplified Chinese" };
const label = (key) => languages[key] || key.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());

// policyRows lays the policy out as settings: durations in words, texts as they read.
function policyRows(obj, prefix) {
  const rows = [];
  for (const [key, value] of Object.entries(obj)) {
    const name = prefix ? prefix + " › " + label(key) : label(key);
    if (value && typeof value === "object" && !Array.isArray(value)) {
      rows.push(...policyRows(value, name));
      continue;
    }
    let shown = Array.isArray(value) ? value.join(", ") : String(value);
    const secs = seconds(value);
    if (!Number.isNaN(secs)) shown = secs === 0 && /retention/i.test(key) ? "kept for ever" : inWords(secs);
    rows.push(el("tr", {}, el("th", { scope: "row", textContent: name }), el("td", { textContent: shown })));
  }
  return rows;
}

async function loadPolicy() {
  const p = await call("GET", "/policy");
  $("policy-rows").replaceChildren(...policyRows(p, ""));
  $("policy-json").textContent = JSON.stringify(p, null, 2);
}

// ---- Start ------------------------------------------------------------------------------------

window.addEventListener("DOMContentLoaded", () => run(async () => {
  const me = await call("GET", "/whoami");
  state.sandbox = me.sandbox;
  $("who").textContent = me.name;
  for (const b of document.querySelectorAll(".tab")) b.onclick = () => openTab(b.dataset.tab);
  usersHandlers();
  complianceHandlers();
  state.employee = remembered.get("employee");
  state.customer = remembered.get("customer");
  const tabs = [...document.querySelectorAll(".tab")].filter((b) => me.sandbox || b.dataset.tab !== "sandbox").map((b) => b.dataset.tab);
  const tab = remembered.get("tab");
  if (me.sandbox) {
    $("mode").hidden = false;
    $("tab-sandbox").hidden = false;
    sandboxHandlers();
    openTab(tabs.includes(tab) ? tab : "sandbox");
  } else {
    openTab(tabs.includes(tab) ? tab : "users");
  }
}));
