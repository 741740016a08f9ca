// The wxteams console: plain JavaScript, no framework. Every call goes to /console/api, which
// forwards to the admin and compliance APIs with the right token. Words go through tr (i18n.js).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { sandbox: false, employee: "", customer: "", timelineAfter: 0, tab: "", employees: [], transcript: null };

// remembered keeps the tab's choices (the tab, the employee, the customer) across reloads.
const remembered = {
  get(k) { try { return sessionStorage.getItem("wxteams." + k) || ""; } catch { return ""; } },
  set(k, v) { try { sessionStorage.setItem("wxteams." + k, v || ""); } catch { /* storage off: nothing to keep */ } },
};

// call sends a console request; its errors are sentences a person can act on. The error carries
// the people an API refusal offered (err.matches).
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
    throw new Error(tr("wxteams did not answer. Is it still running?"));
  }
  if (resp.status === 401 && !state.sandbox) {
    location.href = "/console/login";
    throw new Error(tr("Your session has ended: signing in again."));
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
    const err = new Error(said ? sentence(said) : tr("wxteams answered {status} and gave no reason.", { status: resp.status + " " + (resp.statusText || "") }));
    err.matches = data && Array.isArray(data.matches) ? data.matches : [];
    throw err;
  }
  return data;
}

// sentence makes an API message read as a sentence.
function sentence(s) {
  s = s.trim();
  s = s.charAt(0).toUpperCase() + s.slice(1);
  return /[.!?。]$/.test(s) ? s : s + ".";
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

const plural = (n, unit) => tr(n === 1 ? "{n} " + unit : "{n} " + unit + "s", { n });

// inWords says a duration as people do: "6 years (2192 days)", "48 hours", "2 seconds".
function inWords(total) {
  if (total === 0) return tr("none");
  const day = 86400;
  const days = total / day;
  if (Number.isInteger(days) && days >= 365) {
    const years = Math.round(days / 365.25);
    if (Math.abs(days - years * 365.25) <= 2) return plural(years, "year") + " (" + plural(days, "day") + ")";
    return plural(days, "day");
  }
  if (Number.isInteger(days) && days > 2) return plural(days, "day");
  if (total % 3600 === 0) return plural(total / 3600, "hour");
  if (total % 60 === 0) return plural(total / 60, "minute");
  if (total >= 1 && Number.isInteger(total)) return plural(total, "second");
  return Math.round(total * 1000) + " ms";
}

// ---- Fates ------------------------------------------------------------------------------------

// fateMarks are how a message's fate shows, as Teams and WeChat mark sending, sent and failed.
const fateMarks = {
  sending: ["…", "Sending"], queued: ["⏳", "Queued"], delivered: ["✓", "Delivered"], failed: ["✗", "Not delivered"],
  unknown: ["⚠", "Outcome unknown"], cancelled: ["⊘", "Cancelled"], refused: ["⛔", "Refused"],
};

// fateNode is a message's fate mark: the sign, the state in words and why.
function fateNode(stateName, reason) {
  const [sign, words] = fateMarks[stateName] || ["⛔", stateName];
  const node = el("span", { className: "fate fate-" + (fateMarks[stateName] ? stateName : "refused"), title: reason || "" },
    sign + " " + tr(words));
  if (reason && stateName !== "delivered") node.append(el("span", { className: "why", textContent: " — " + reason }));
  return node;
}

// ---- People -----------------------------------------------------------------------------------

// pickers turn inputs marked data-picker into a search of the people wxteams knows: typing offers
// the matching employees and customers by name, and choosing one keeps their id (shown below).
function pickers() {
  for (const input of document.querySelectorAll("input[data-picker]")) {
    const label = input.closest("label");
    const list = el("ul", { className: "matches", hidden: true, role: "listbox" });
    const detail = el("span", { className: "detail" });
    label.append(detail, list);
    let timer = 0, asked = 0;
    input.addEventListener("input", () => {
      delete input.dataset.id; delete input.dataset.kind; delete input.dataset.chats;
      detail.textContent = "";
      clearTimeout(timer);
      const q = input.value.trim();
      if (!q) { list.hidden = true; return; }
      timer = setTimeout(async () => {
        const mine = ++asked;
        try {
          const people = await findPeople(q, input.dataset.picker);
          if (mine === asked) offer(input, people);
        } catch (err) { showError(err); }
      }, 150);
    });
    input.addEventListener("keydown", (e) => { if (e.key === "Escape") list.hidden = true; });
    input.offer = (people) => offer(input, people);
  }
}

async function findPeople(q, kind) {
  const people = (await call("GET", "/compliance/people?q=" + encodeURIComponent(q) + "&limit=12")).people || [];
  return people.filter((p) => kind === "any" || p.kind === kind);
}

function describePerson(p) {
  return tr(p.kind === "employee" ? "employee" : "customer") + " · " + p.id + (p.email ? " · " + p.email : "");
}

function offer(input, people) {
  const label = input.closest("label");
  const list = label.querySelector(".matches");
  list.replaceChildren(...people.map((p) => el("li", {},
    el("button", { type: "button", className: "match", title: p.id, onclick: () => choosePerson(input, p) },
      el("strong", { textContent: p.name }), el("span", { className: "detail", textContent: describePerson(p) })))));
  if (people.length === 0) list.append(el("li", { className: "empty", textContent: tr("Nobody matches.") }));
  list.hidden = false;
}

function choosePerson(input, p) {
  input.value = p.name;
  input.dataset.id = p.id;
  input.dataset.kind = p.kind;
  input.dataset.chats = JSON.stringify(p.chats || []);
  const label = input.closest("label");
  label.querySelector(".matches").hidden = true;
  label.querySelector(".detail").textContent = describePerson(p);
  input.dispatchEvent(new Event("picked"));
}

// picked is the person chosen in a picker: null when it is empty. Text typed but not picked is
// resolved when it names exactly one person; otherwise the matches are offered and it throws.
async function picked(input, kind) {
  if (!input.value.trim()) return null;
  if (input.dataset.id) return { id: input.dataset.id, kind: input.dataset.kind, name: input.value, chats: JSON.parse(input.dataset.chats || "[]") };
  const people = await findPeople(input.value.trim(), kind || input.dataset.picker);
  const exact = people.filter((p) => p.name.toLowerCase() === input.value.trim().toLowerCase() || p.id === input.value.trim() || (p.email || "").toLowerCase() === input.value.trim().toLowerCase());
  const only = exact.length === 1 ? exact[0] : people.length === 1 ? people[0] : null;
  if (only) { choosePerson(input, only); return only; }
  offer(input, people);
  throw new Error(people.length === 0 ? tr("Nobody matches “{q}”.", { q: input.value.trim() }) : tr("Several people match “{q}”: pick one from the list.", { q: input.value.trim() }));
}

// personQuery puts the picked person in a query as the API names them (employee or contact).
function personQuery(p, q) {
  if (p) q[p.kind === "employee" ? "employee" : "contact"] = p.id;
  return q;
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
  if (name === "rules") run(loadRules);
  if (name === "review") { run(() => loadReviews(1)); run(loadSampleSetting); run(loadReport); }
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

const statusWords = { pending: "waiting for the customer to write first", active: "active", capped: "waiting for the customer's reply",
  inactive: "inactive", left: "left", closed: "closed" };

async function refreshState() {
  const st = await call("GET", "/sandbox/state");
  setText($("now"), when(st.now) + " UTC");
  setText($("jumped"), st.jumped !== "0s" ? tr("(clock moved {d})", { d: inWords(seconds(st.jumped)) }) : "");
  const enabled = st.employees.filter((e) => e.enabled);
  fillSelect($("employee"), st.employees.map((e) => [e.id, e.name + (e.enabled ? "" : " " + tr("(WeChat not enabled)"))]),
    state.employee || (enabled[0] && enabled[0].id));
  fillSelect($("scan-employee"), enabled.map((e) => [e.id, e.name]));
  fillSelect($("customer"), st.customers.map((c) => [c.openid, c.name]), state.customer);
  choose("employee", $("employee").value);
  choose("customer", $("customer").value);
  const me = st.customers.find((c) => c.openid === state.customer);
  setText($("chat-status"), me ? (me.chat ? tr("Chat: {s}", { s: tr(statusWords[me.chat] || me.chat) }) + (tr(statusWords[me.chat] || me.chat) === me.chat ? "" : " (" + me.chat + ")") : tr("Not connected to anyone yet: scan an employee's QR code.")) : tr("Make a customer first."));
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
  const li = el("li", { className: it.mine ? "mine" : it.failed ? "failed" : it.author ? "colleague" : it.note ? "note" : "theirs" });
  let text = it.text || "";
  if (it.author) {
    li.append(el("span", { className: "author", textContent: tr("{name} (colleague)", { name: it.author }) }));
  }
  if (text) li.append(el("p", { textContent: text }));
  if (it.image) li.append(el("img", { src: it.image, alt: tr("image") }));
  for (const a of it.actions || []) {
    li.append(el("button", { type: "button", className: "action", textContent: a.title,
      onclick: () => run(async () => { await call("POST", "/sandbox/teams/" + who + "/click", { activity: it.id, verb: a.verb, data: a.data }); await refreshPanes(); }) }));
  }
  const time = el("time", { textContent: when(it.at).slice(11) });
  if (it.fate) time.append(" ", fateNode(it.fate, it.fate_text));
  li.append(time);
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
    const sig = JSON.stringify(it) + document.documentElement.lang;
    let li = old.get(key);
    if (!li || li.dataset.sig !== sig) {
      const fresh = bubble(it, who);
      fresh.dataset.key = key;
      fresh.dataset.sig = sig;
      if (li) {
        if (before === li) before = fresh;
        li.replaceWith(fresh);
      }
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

// The live archive: newest first; a receipt (queued, delivered, failed …) goes under the message
// it is about when that is on screen.
const timelineMessages = new Map();

async function refreshTimeline() {
  const items = (await call("GET", "/sandbox/timeline?after=" + state.timelineAfter)).items;
  const list = $("timeline");
  for (const r of items) {
    state.timelineAfter = Math.max(state.timelineAfter, r.id);
    const at = when(r.at).slice(5);
    const under = r.receipt && timelineMessages.get(r.message_id);
    if (under) {
      under.querySelector(".receipts").append(el("li", { className: "receipt", title: r.stream + " #" + r.seq }, fateNode(r.state, ""),
        el("span", { className: "kind", textContent: r.kind }),
        el("span", { className: "where", textContent: at + (r.detail ? " · " + r.detail : "") })));
      continue;
    }
    const li = el("li", { className: "kind-" + r.kind.replace(/\W/g, "-") },
      r.receipt ? el("span", { className: "kind" }, fateNode(r.state, ""), " " + r.kind) : el("span", { className: "kind", textContent: r.kind }),
      el("span", { className: "where", title: r.actor + " · " + r.stream, textContent: (r.actor_name || r.actor) + " · " + (r.stream_name || r.stream) + " #" + r.seq + " · " + at }),
      r.text ? el("q", { textContent: r.text }) : "",
      r.detail ? el("span", { className: "detail", textContent: r.detail }) : "",
      el("ol", { className: "receipts" }));
    if (r.message_id && !r.receipt) timelineMessages.set(r.message_id, li);
    list.prepend(li);
  }
  while (list.children.length > 300) {
    const last = list.lastChild;
    for (const [k, v] of timelineMessages) if (v === last) timelineMessages.delete(k);
    last.remove();
  }
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
    if (!state.customer) throw new Error(tr("Make a customer first."));
    await call("POST", "/sandbox/wechat/" + state.customer + "/say", { text: t.value }); t.value = ""; }); };
  $("leave").onclick = () => act(async () => {
    if (!state.customer) throw new Error(tr("Make a customer first."));
    await call("POST", "/sandbox/wechat/" + state.customer + "/say", { text: "#LEAVE" });
  });
  $("new-customer").onclick = () => act(async () => {
    const r = await call("POST", "/sandbox/wechat", {});
    choose("customer", r.openid);
    await refreshState();
    $("customer").value = r.openid;
  });
  $("scan").onclick = () => act(async () => {
    if (!state.customer) throw new Error(tr("Make a customer first."));
    const emp = $("scan-employee").value;
    if (!emp) throw new Error(tr("Nobody has WeChat enabled: enable an employee on the Users page first."));
    await call("POST", "/sandbox/wechat/" + state.customer + "/scan", { employee: emp });
    choose("employee", emp);
    $("employee").value = emp;
  });
  $("advance-24h").onclick = () => act(() => call("POST", "/sandbox/clock", { advance: "24h" }));
  $("advance-48h").onclick = () => act(() => call("POST", "/sandbox/clock", { advance: "48h" }));
  setInterval(tick, 1000);
}

// ---- Users ------------------------------------------------------------------------------------

const openChats = new Set(); // users whose chats are shown

async function loadUsers() {
  const users = (await call("GET", "/admin/users")).users || [];
  state.employees = users;
  const rows = [];
  for (const u of users) {
    const qr = el("td");
    if (u.wechat_enabled) {
      const img = el("img", { alt: tr("WeChat QR code of {name}", { name: u.name || u.id }), className: "qr" });
      call("GET", "/admin/users/" + encodeURIComponent(u.id) + "/qr").then((blob) => { img.src = URL.createObjectURL(blob); }).catch(() => {});
      qr.append(img);
    }
    const toggle = el("button", { type: "button", textContent: tr(u.wechat_enabled ? "Disable" : "Enable"),
      onclick: () => run(async () => {
        await call(u.wechat_enabled ? "DELETE" : "PUT", "/admin/users/" + encodeURIComponent(u.id) + "/wechat", u.wechat_enabled ? undefined : { name: u.name });
        await loadUsers();
      }) });
    const chatsButton = el("button", { type: "button", className: "chats-toggle", textContent: tr(openChats.has(u.id) ? "Hide chats" : "Chats"),
      onclick: () => { if (openChats.has(u.id)) openChats.delete(u.id); else openChats.add(u.id); run(loadUsers); } });
    rows.push(el("tr", {}, el("td", {}, el("strong", { textContent: u.name || u.id }), el("span", { className: "detail", title: u.id, textContent: u.id + (u.email ? " · " + u.email : "") })),
      el("td", { textContent: tr(u.wechat_enabled ? "enabled" : "not enabled") }),
      el("td", { textContent: tr(u.teams_installed ? (u.teams_reachable ? "app installed" : "unreachable") : "not installed") }), qr,
      el("td", {}, el("div", { className: "actions" }, toggle, u.wechat_enabled ? chatsButton : ""))));
    rows[rows.length - 1].dataset.user = u.id;
    if (openChats.has(u.id)) {
      const cell = el("td", { colSpan: 5, className: "chats" }, tr("Loading…"));
      rows.push(el("tr", { className: "chats-row" }, cell));
      userChats(u, cell).catch((err) => { cell.textContent = err.message; });
    }
  }
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colSpan: 5, className: "empty", textContent: tr("Nobody yet: enable an employee above.") })));
  $("users-rows").replaceChildren(...rows);
}

// userChats shows an employee's chats with their members; an administrator adds or removes a
// colleague by name (each change archived with who made it).
async function userChats(u, cell) {
  const chats = (await call("GET", "/admin/users/" + encodeURIComponent(u.id) + "/chats")).chats || [];
  if (chats.length === 0) { cell.textContent = tr("{name} has no chats yet.", { name: u.name || u.id }); return; }
  const list = el("ul", { className: "chat-list" });
  for (const c of chats) {
    const members = el("ul", { className: "members" });
    for (const m of c.members) {
      members.append(el("li", {}, el("span", { title: m.id, textContent: m.name || m.id }),
        el("button", { type: "button", className: "remove", textContent: tr("Remove"), title: tr("Remove {name} from the chat", { name: m.name || m.id }),
          onclick: () => run(async () => { await call("DELETE", "/admin/chats/" + c.id + "/members/" + encodeURIComponent(m.id)); await loadUsers(); }) })));
    }
    const candidates = state.employees.filter((e) => e.wechat_enabled && !c.members.some((m) => m.id === e.id));
    const pick = el("select", { className: "add-member", ariaLabel: tr("Colleague to add") },
      ...candidates.map((e) => el("option", { value: e.id, textContent: e.name || e.id })));
    const add = el("button", { type: "button", className: "add", textContent: tr("Add to the chat"), disabled: candidates.length === 0,
      onclick: () => run(async () => { await call("PUT", "/admin/chats/" + c.id + "/members/" + encodeURIComponent(pick.value)); await loadUsers(); }) });
    list.append(el("li", { className: "chat" },
      el("strong", { textContent: c.contact_name }), " · ", tr("chat {id}", { id: c.id }), " · ", tr(statusWords[c.status] || c.status),
      c.queued ? " · " + tr("{n} queued", { n: c.queued }) : "",
      el("div", { className: "member-line" }, el("span", { textContent: tr("Members:") }), members),
      el("div", { className: "member-line" }, ...(candidates.length ? [pick, add] : [el("span", { className: "detail", textContent: tr("Everyone with WeChat is in this chat.") })]))));
  }
  cell.replaceChildren(list);
}

function usersHandlers() {
  $("enable-form").onsubmit = (e) => { e.preventDefault(); run(async () => {
    const res = await call("PUT", "/admin/users/" + encodeURIComponent($("enable-id").value.trim()) + "/wechat", { name: $("enable-name").value });
    $("enable-id").value = ""; $("enable-name").value = ""; await loadUsers();
    if (res && res.install_error) throw new Error(tr("WeChat enabled for {name}, but the Teams app was not installed: {why}", { name: res.user.name || res.user.id, why: res.install_error }));
  }); };
}

// ---- Compliance -------------------------------------------------------------------------------

function status(id, text, isError) {
  const p = $(id);
  p.textContent = text;
  p.className = "status" + (isError ? " problem" : "");
}

const kindWords = { "customer.message": "customer's message", "employee.message": "employee's message", "auto.message": "notice" };

async function search() {
  const rows = $("search-rows");
  rows.replaceChildren(); // never leave an earlier search's results under a new question
  status("search-status", tr("Searching…"));
  try {
    const who = await picked($("search-person"));
    const q = new URLSearchParams(personQuery(who, {}));
    for (const [k, id] of [["from", "search-from"], ["to", "search-to"], ["q", "search-q"]]) {
      const v = $(id).value.trim();
      if (v) q.set(k, v);
    }
    const res = await call("GET", "/compliance/records?" + q);
    const records = Array.isArray(res.records) ? res.records : [];
    rows.replaceChildren(...records.map((r) => el("tr", {}, el("td", { textContent: when(r.at) }),
      el("td", {}, r.chat_id ? el("button", { type: "button", className: "link", textContent: tr("chat {id}", { id: r.chat_id }), title: tr("Read the conversation"),
        onclick: () => run(() => openTranscript(r.chat_id)) }) : el("span", { title: r.stream, textContent: r.stream_name || r.stream })),
      el("td", { textContent: tr(kindWords[r.kind] || r.kind) }),
      el("td", { title: r.actor, textContent: r.actor_name || r.actor }),
      el("td", { textContent: r.text || "" }))));
    if (records.length === 0) {
      rows.append(el("tr", {}, el("td", { colSpan: 5, className: "empty", textContent: tr("No records match.") })));
      status("search-status", tr("No records match."));
    } else {
      status("search-status", plural(records.length, "record") + (res.truncated ? tr(", and more match: narrow the search.") : "."));
    }
  } catch (err) {
    status("search-status", err.message || String(err), true);
  }
}

// ---- Transcript -------------------------------------------------------------------------------

// chatChoices fills the chat list from the person picked (their chats).
async function chatChoices() {
  const input = $("transcript-who");
  const chats = input.dataset.chats ? JSON.parse(input.dataset.chats) : [];
  fillSelect($("transcript-chat"), chats.map((id) => [String(id), tr("chat {id}", { id })]), chats.length ? String(chats[0]) : "");
  if (chats.length === 0 && input.dataset.id) status("transcript-status", tr("{name} is in no chat.", { name: input.value }));
}

async function openTranscript(chat, page) {
  const select = $("transcript-chat");
  if (![...select.options].some((o) => o.value === String(chat))) {
    select.append(el("option", { value: String(chat), textContent: tr("chat {id}", { id: chat }) }));
  }
  select.value = String(chat);
  if (!state.transcript || state.transcript.chat.id !== chat) $("transcript-person").dataset.chat = "";
  await showTranscript(page || 1);
  $("transcript-title").scrollIntoView({ block: "start" });
}

async function showTranscript(page) {
  const chat = $("transcript-chat").value;
  if (!chat) {
    await picked($("transcript-who"));
    await chatChoices();
    if (!$("transcript-chat").value) throw new Error(tr("Pick a person with a chat first."));
    return showTranscript(page);
  }
  const q = new URLSearchParams({ page: String(page), size: "25" });
  const types = [...document.querySelectorAll("input[name=types]:checked")].map((c) => c.value);
  if (types.length === 0) throw new Error(tr("Choose what to show: messages, notices or chat events."));
  if (types.length < 3) q.set("types", types.join(","));
  if ($("transcript-person").dataset.chat === chat && $("transcript-person").value) q.set("person", $("transcript-person").value);
  for (const [k, id] of [["from", "transcript-from"], ["to", "transcript-to"]]) if ($(id).value) q.set(k, $(id).value);
  status("transcript-status", tr("Reading…"));
  const t = await call("GET", "/compliance/chats/" + chat + "/transcript?" + q);
  state.transcript = t;
  renderTranscript(t);
}

function renderTranscript(t) {
  const people = [t.chat.contact, ...t.chat.members];
  const who = $("transcript-person");
  if (who.dataset.chat !== String(t.chat.id)) {
    fillSelect(who, [["", tr("everyone")], ...people.map((p) => [p.id, p.name])], "");
    who.dataset.chat = String(t.chat.id);
  }
  $("transcript-head").replaceChildren(el("strong", { textContent: tr("Chat {id} with {name}", { id: t.chat.id, name: t.chat.contact.name }) }),
    el("span", { className: "detail", textContent: " · " + tr(statusWords[t.chat.status] || t.chat.status) + " · " +
      tr("members: {names}", { names: t.chat.members.map((m) => m.name).join(", ") || tr("nobody") }) }));
  const list = $("transcript");
  list.replaceChildren(...t.entries.map(entryNode));
  if (t.entries.length === 0) list.append(el("li", { className: "empty", textContent: tr("Nothing in this chat matches.") }));
  setText($("transcript-page"), tr("page {page} of {pages} · {n} entries", { page: t.page, pages: t.pages, n: t.total }));
  $("transcript-prev").disabled = t.page <= 1;
  $("transcript-next").disabled = t.page >= t.pages;
  $("transcript-export").disabled = t.records.length === 0;
  $("transcript-export").textContent = tr("Export what is shown ({n} records)", { n: t.records.length });
  status("transcript-status", "");
}

function entryNode(e) {
  const at = el("time", { textContent: when(e.at) });
  if (e.type !== "message") {
    const to = e.to && e.to.length ? tr("to {name}", { name: e.to.map((p) => p.name).join(", ") }) + ": " : "";
    const li = el("li", { className: "line " + e.type }, at, " ", el("span", { textContent: (e.type === "notice" ? to : e.author.name + ": ") + (e.text || "") }));
    if (e.fate && e.fate.state !== "delivered") li.append(" ", fateNode(e.fate.state, e.fate.reason));
    return li;
  }
  const side = e.author.kind === "customer" ? "customer" : "employee";
  const li = el("li", { className: "message " + side },
    el("div", { className: "meta" }, el("strong", { title: e.author.id, textContent: e.author.name }), " ", at),
    e.text ? el("p", { textContent: e.text }) : "",
    e.media ? el("p", { className: "detail", textContent: "[" + e.media + "]" }) : "");
  if (e.fate) {
    const fate = el("div", { className: "fate-line" }, fateNode(e.fate.state, e.fate.reason));
    if (e.fate.receipts.length) {
      fate.append(el("details", {}, el("summary", { textContent: plural(e.fate.receipts.length, "step") }),
        el("ol", {}, ...e.fate.receipts.map((r) => el("li", {}, when(r.at).slice(11) + " ", fateNode(r.state, r.reason),
          r.to ? " " + tr("to {name}", { name: r.to.name }) : "")))));
    }
    li.append(fate);
  }
  return li;
}

function transcriptHandlers() {
  $("transcript-who").addEventListener("picked", () => run(async () => { await chatChoices(); if ($("transcript-chat").value) await showTranscript(1); }));
  $("transcript-form").onsubmit = (e) => { e.preventDefault(); run(() => showTranscript(1)); };
  $("transcript-chat").onchange = () => run(() => showTranscript(1));
  $("transcript-prev").onclick = () => run(() => showTranscript(state.transcript.page - 1));
  $("transcript-next").onclick = () => run(() => showTranscript(state.transcript.page + 1));
  $("transcript-export").onclick = () => run(async () => {
    const t = state.transcript;
    await call("POST", "/compliance/exports", { chat: t.chat.id, records: t.records, formats: checkedFormats() });
    await loadExports();
    status("transcript-status", tr("Export started: the {n} records shown, listed under Exports.", { n: t.records.length }));
  });
}

// ---- Exports, verification, holds -------------------------------------------------------------

function checkedFormats() {
  const formats = [...document.querySelectorAll("input[name=format]:checked")].map((c) => c.value);
  if (formats.length === 0) throw new Error(tr("Choose at least one export format."));
  return formats;
}

function complianceHandlers() {
  $("search-form").onsubmit = (e) => { e.preventDefault(); search(); };
  $("export-form").onsubmit = (e) => { e.preventDefault(); run(async () => {
    const formats = checkedFormats();
    const who = await picked($("export-person"));
    await call("POST", "/compliance/exports", personQuery(who, { formats, from: $("export-from").value, to: $("export-to").value }));
    await loadExports();
  }); };
  $("verify").onclick = () => run(async () => {
    const r = await call("POST", "/compliance/verify");
    $("verify-result").textContent = r.intact
      ? tr("Intact: {records} records and {checkpoints} signed checkpoints verified.", { records: r.records, checkpoints: r.checkpoints })
      : tr("NOT intact: {problem}", { problem: r.problem });
  });
  $("hold-scope").onchange = () => {
    const input = $("hold-subject");
    input.dataset.picker = $("hold-scope").value === "employee" ? "employee" : "customer";
    input.value = ""; delete input.dataset.id; input.dispatchEvent(new Event("input"));
  };
  $("hold-form").onsubmit = (e) => { e.preventDefault(); run(async () => {
    const scope = $("hold-scope").value;
    const input = $("hold-subject");
    // The person picked, else what was typed: wxteams refuses a subject that names nobody, and
    // offers who it may have meant.
    let subject = input.dataset.id || input.value.trim();
    if (scope === "chat" && !/^\d+$/.test(subject)) {
      const p = await picked(input, "customer");
      if (!p.chats.length) throw new Error(tr("{name} is in no chat.", { name: p.name }));
      subject = String(p.chats[0]);
    }
    try {
      await call("POST", "/compliance/holds", { scope, subject, reason: $("hold-reason").value });
    } catch (err) {
      if (err.matches && err.matches.length) input.offer(err.matches);
      throw err;
    }
    input.value = ""; delete input.dataset.id; $("hold-reason").value = ""; await loadHolds(); }); };
}

const formatNames = { jsonl: "JSONL", csv: "CSV", eml: "EML", actiance: "Actiance XML" };
const stateWords = { running: "running", done: "done", failed: "failed" };

async function loadExports() {
  const list = (await call("GET", "/compliance/exports")).exports || [];
  const rows = list.map((x) => {
    const get = el("td");
    if (x.state === "done") {
      get.append(el("button", { type: "button", textContent: tr("Download"), onclick: () => run(async () => {
        const blob = await call("GET", "/compliance/exports/" + x.id + "/download");
        const a = el("a", { href: URL.createObjectURL(blob), download: "wxteams-" + x.id + ".zip" });
        document.body.append(a); a.click(); a.remove();
      }) }));
    }
    const formats = (x.formats || []).map((f) => formatNames[f] || f).join(", ");
    return el("tr", {}, el("td", { className: "id", textContent: x.id }), el("td", { textContent: tr(stateWords[x.state] || x.state) + (x.error ? ": " + x.error : "") }),
      el("td", { textContent: formats }), el("td", { className: "num", textContent: x.records === undefined ? "" : String(x.records) }), get);
  });
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colSpan: 5, className: "empty", textContent: tr("No exports yet.") })));
  $("export-rows").replaceChildren(...rows);
  // While an export is being written, look again each second until it is done.
  clearTimeout(exportsTimer);
  if (list.some((x) => x.state === "running")) exportsTimer = setTimeout(() => { if (state.tab === "compliance") loadExports().catch(showError); }, 1000);
}
let exportsTimer = 0;

const scopeWords = { contact: "customer", employee: "employee", chat: "chat" };

async function loadHolds() {
  const holds = (await call("GET", "/compliance/holds")).holds || [];
  const rows = holds.map((h) => el("tr", {}, el("td", { textContent: h.id }), el("td", { textContent: tr(scopeWords[h.scope] || h.scope) }),
    el("td", {}, el("strong", { textContent: h.subject_name || h.subject }), h.subject_name ? el("span", { className: "detail", textContent: h.subject }) : ""),
    el("td", { textContent: h.reason }), el("td", { textContent: when(h.placed_at) + " " + tr("by {who}", { who: h.placed_by }) }),
    el("td", {}, el("button", { type: "button", textContent: tr("Lift"), onclick: () => run(async () => {
      const reason = prompt(tr("Why is the hold lifted?"));
      if (!reason) return;
      await call("DELETE", "/compliance/holds/" + h.id + "?reason=" + encodeURIComponent(reason)); await loadHolds(); }) }))));
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colSpan: 6, className: "empty", textContent: tr("No legal holds.") })));
  $("hold-rows").replaceChildren(...rows);
}

// ---- Policy -----------------------------------------------------------------------------------

const languages = { en: "English", "zh-CN": "Simplified Chinese" };
const label = (key) => tr(languages[key] || key.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase()));

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
    if (!Number.isNaN(secs)) shown = secs === 0 && /retention/i.test(key) ? tr("kept for ever") : inWords(secs);
    rows.push(el("tr", {}, el("th", { scope: "row", textContent: name }), el("td", { textContent: shown })));
  }
  return rows;
}

async function loadPolicy() {
  const p = await call("GET", "/policy");
  $("policy-rows").replaceChildren(...policyRows(p, ""));
  $("policy-json").textContent = JSON.stringify(p, null, 2);
}

// ---- Rules ------------------------------------------------------------------------------------

const actionWords = { block: "block", redact: "redact", flag: "flag" };
const directionWords = { to_customer: "employee → customer", to_employee: "customer → employee" };

// nameOf names an employee id from the people directory, each id asked once.
const employeeNames = new Map();
async function nameOf(id) {
  if (!employeeNames.has(id)) {
    employeeNames.set(id, (async () => {
      try {
        const people = (await call("GET", "/compliance/people?q=" + encodeURIComponent(id) + "&limit=5")).people || [];
        const p = people.find((x) => x.id === id);
        return p ? p.name : id;
      } catch { return id; }
    })());
  }
  return employeeNames.get(id);
}

async function coverageWords(r) {
  const parts = [];
  for (const g of r.groups || []) parts.push(tr("group {name}", { name: g }));
  for (const e of r.employees || []) parts.push(await nameOf(e));
  return parts.length ? parts.join(", ") : tr("everyone");
}

async function loadRules() {
  const res = await call("GET", "/compliance/rules");
  state.rules = res.rules || [];
  state.groups = res.groups || {};
  const rows = [];
  for (const r of state.rules) {
    rows.push(el("tr", {},
      el("td", {}, el("strong", { textContent: r.name }), el("span", { className: "detail", textContent: r.id })),
      el("td", { className: "num", textContent: String(r.version) }),
      el("td", { textContent: tr(actionWords[r.action] || r.action) + (r.disabled ? " (" + tr("disabled") + ")" : "") }),
      el("td", { textContent: (r.directions || []).map((d) => tr(directionWords[d] || d)).join(", ") }),
      el("td", { textContent: await coverageWords(r) }),
      el("td", { className: "num", textContent: String((r.terms || []).length) }),
      el("td", {}, el("button", { type: "button", className: "rule-edit", textContent: tr("Edit"), onclick: () => run(() => editRule(r.id)) }))));
    rows[rows.length - 1].dataset.rule = r.id;
  }
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colSpan: 7, className: "empty", textContent: tr("No rules yet: add one below.") })));
  $("rules-rows").replaceChildren(...rows);
  const groups = [];
  for (const [name, ids] of Object.entries(state.groups)) {
    const names = [];
    for (const id of ids) names.push(await nameOf(id));
    groups.push(el("tr", {}, el("td", { textContent: name }), el("td", { textContent: names.join(", ") })));
  }
  if (groups.length === 0) groups.push(el("tr", {}, el("td", { colSpan: 2, className: "empty", textContent: tr("No groups yet.") })));
  $("group-rows").replaceChildren(...groups);
}

// termsText writes a rule's terms one per line, patterns as "regex:…".
const termsText = (terms) => (terms || []).map((t) => (t.regex ? "regex:" + t.text : t.text)).join("\n");
const termsOf = (text) => text.split("\n").map((l) => l.trim()).filter((l) => l)
  .map((l) => (l.startsWith("regex:") ? { text: l.slice(6).trim(), regex: true } : { text: l }));
const lines = (text) => text.split("\n").map((l) => l.trim()).filter((l) => l);

function ruleChips() {
  $("rule-employees").replaceChildren(...state.ruleEmployees.map((p) => el("li", {}, el("span", { textContent: p.name, title: p.id }),
    el("button", { type: "button", textContent: "×", title: tr("Remove {name}", { name: p.name }), onclick: () => {
      state.ruleEmployees = state.ruleEmployees.filter((x) => x.id !== p.id); ruleChips(); } }))));
}

async function openRuleForm(r, history) {
  state.editing = r;
  $("rule-form").hidden = false;
  $("rule-form-title").textContent = r ? tr("Rule {id}, version {v}", { id: r.id, v: r.version }) : tr("New rule");
  $("rule-id").value = r ? r.id : "";
  $("rule-id").readOnly = !!r;
  $("rule-name").value = r ? r.name : "";
  $("rule-reason").value = r ? r.reason || "" : "";
  $("rule-action").value = r ? r.action : "block";
  for (const c of document.querySelectorAll("input[name=rule-direction]")) c.checked = r ? (r.directions || []).includes(c.value) : c.value === "to_customer";
  $("rule-terms").value = r ? termsText(r.terms) : "";
  $("rule-exceptions").value = r ? (r.exceptions || []).join("\n") : "";
  $("rule-groups").value = r ? (r.groups || []).join(", ") : "";
  $("rule-replacement").value = r ? r.replacement || "" : "";
  $("rule-disabled").checked = r ? !!r.disabled : false;
  state.ruleEmployees = [];
  for (const id of (r && r.employees) || []) state.ruleEmployees.push({ id, name: await nameOf(id) });
  ruleChips();
  $("rule-delete").hidden = !r;
  $("rule-history-box").hidden = !history;
  $("rule-history-box").open = !!history;
  $("rule-history").replaceChildren(...(history || []).slice().reverse().map((v) => el("li", {},
    el("strong", { textContent: "v" + v.version }), " " + when(v.changed_at) + " · " +
    (v.deleted ? tr("deleted by {who}", { who: v.changed_by }) : tr("{action}, {n} terms, by {who}", { action: tr(actionWords[v.action] || v.action), n: (v.terms || []).length, who: v.changed_by })))));
  status("rule-status", "");
  $("rule-form").scrollIntoView({ block: "nearest" });
}

async function editRule(id) {
  const res = await call("GET", "/compliance/rules/" + encodeURIComponent(id));
  await openRuleForm(res.rule, res.history || []);
}

function ruleFromForm() {
  const r = {
    id: $("rule-id").value.trim(), version: state.editing ? state.editing.version : 0, name: $("rule-name").value.trim(),
    reason: $("rule-reason").value.trim(), action: $("rule-action").value,
    directions: [...document.querySelectorAll("input[name=rule-direction]:checked")].map((c) => c.value),
    terms: termsOf($("rule-terms").value), exceptions: lines($("rule-exceptions").value),
    employees: state.ruleEmployees.map((p) => p.id),
    groups: $("rule-groups").value.split(",").map((g) => g.trim()).filter((g) => g),
    replacement: $("rule-replacement").value, disabled: $("rule-disabled").checked,
  };
  if (r.directions.length === 0) throw new Error(tr("Choose at least one direction."));
  return r;
}

// showCheck shows what the rules do to a message: the verdict, each match highlighted in the
// text, and what would be delivered.
function showCheck(text, res) {
  const box = $("try-result");
  const action = res.action || "none";
  const verdicts = { block: "Blocked: not delivered; the employee is told which rule.", redact: "Redacted: delivered with the matches replaced.",
    flag: "Flagged: delivered, and a review item is opened.", none: "No rule matches: delivered as written." };
  const marked = el("p", { className: "delivered" });
  // Highlight matched spans (byte offsets in UTF-8) in the original.
  const bytes = new TextEncoder().encode(text);
  const spans = (res.matches || []).slice().sort((a, b) => a.start - b.start);
  let at = 0;
  const dec = new TextDecoder();
  for (const m of spans) {
    if (m.start < at) continue;
    marked.append(dec.decode(bytes.slice(at, m.start)));
    marked.append(el("mark", { className: "hit hit-" + m.action, title: m.name + " (" + m.rule + ") · " + m.term, textContent: dec.decode(bytes.slice(m.start, m.end)) }));
    at = m.end;
  }
  marked.append(dec.decode(bytes.slice(at)));
  const list = el("ul", {}, ...(res.matches || []).map((m) => el("li", {}, el("strong", { textContent: m.name }), " · " +
    tr(actionWords[m.action] || m.action) + " · " + tr("term {term}", { term: m.term }) + " · " + m.rule)));
  box.replaceChildren(el("p", { className: "verdict verdict-" + action, textContent: tr(verdicts[action] || action) }),
    el("div", { className: "detail", textContent: tr("Matches in the message:") }), marked, list,
    el("div", { className: "detail", textContent: tr("What would be delivered:") }),
    el("p", { className: "delivered what", textContent: action === "block" ? tr("(nothing)") : res.text }),
    el("p", { className: "detail", textContent: tr("Checked against: {rules}", { rules: (res.checked || []).join(", ") || tr("no rule") }) }));
}

function rulesHandlers() {
  state.ruleEmployees = [];
  $("rule-new").onclick = () => run(() => openRuleForm(null, null));
  $("rule-cancel").onclick = () => { $("rule-form").hidden = true; state.editing = null; };
  $("rule-employee").addEventListener("picked", () => {
    const input = $("rule-employee");
    if (!state.ruleEmployees.some((p) => p.id === input.dataset.id)) state.ruleEmployees.push({ id: input.dataset.id, name: input.value });
    input.value = ""; delete input.dataset.id; input.closest("label").querySelector(".detail").textContent = "";
    ruleChips();
  });
  $("rule-form").onsubmit = (e) => { e.preventDefault(); run(async () => {
    const r = ruleFromForm();
    try {
      const res = await call("PUT", "/compliance/rules/" + encodeURIComponent(r.id), r);
      status("rule-status", tr("Saved: {id} is at version {v}.", { id: res.rule.id, v: res.rule.version }));
      await loadRules();
      await editRule(res.rule.id);
      status("rule-status", tr("Saved: {id} is at version {v}.", { id: res.rule.id, v: res.rule.version }));
    } catch (err) {
      status("rule-status", err.message, true);
      throw err;
    }
  }); };
  $("rule-delete").onclick = () => run(async () => {
    const r = state.editing;
    if (!r || !confirm(tr("Delete rule {id}? Its versions stay in the record.", { id: r.id }))) return;
    await call("DELETE", "/compliance/rules/" + encodeURIComponent(r.id) + "?version=" + r.version);
    $("rule-form").hidden = true; state.editing = null;
    await loadRules();
  });
  $("try-form").onsubmit = (e) => { e.preventDefault(); run(async () => {
    const who = await picked($("try-employee"));
    const text = $("try-text").value;
    const res = await call("POST", "/compliance/rules/check", { text, direction: $("try-direction").value, employee: who ? who.id : "" });
    showCheck(text, res);
  }); };
  $("group-form").onsubmit = (e) => { e.preventDefault(); run(async () => {
    const name = $("group-name").value.trim();
    const who = await picked($("group-employee"));
    if (!who) throw new Error(tr("Pick the employee to add."));
    const members = [...new Set([...(state.groups[name] || []), who.id])];
    await call("PUT", "/compliance/groups/" + encodeURIComponent(name), { employees: members });
    $("group-employee").value = ""; delete $("group-employee").dataset.id;
    await loadRules();
  }); };
}

// ---- Review -----------------------------------------------------------------------------------

const reviewStateWords = { open: "open", assigned: "assigned", escalated: "escalated", closed: "closed" };
const decisionWords = { no_issue: "no issue", escalate: "escalate", close: "close" };
const stepWords = { opened: "opened", assigned: "assigned", decided: "decided" };

function ruleName(ref) {
  const id = ref.split("@")[0];
  const r = (state.rules || []).find((x) => x.id === id);
  return r ? r.name + " (" + ref + ")" : ref;
}

function whyWords(it) {
  return it.reason === "sample" ? tr("sampled: {day}", { day: it.day }) : tr("flagged: {rules}", { rules: (it.rules || []).map(ruleName).join(", ") });
}

// since words a time to review; decided is how many items it was measured on ("—": none).
function since(seconds, decided) {
  if (!decided) return "—";
  if (seconds < 60) return tr("under a minute");
  if (seconds < 3600) return plural(Math.round(seconds / 60), "minute");
  if (seconds < 3 * 86400) return plural(Math.round(seconds / 3600), "hour");
  return plural(Math.round(seconds / 86400), "day");
}

async function loadReviews(page) {
  if (!state.rules) { try { await loadRules(); } catch { /* names fall back to refs */ } }
  const q = new URLSearchParams({ page: String(page || 1), size: "20" });
  for (const [k, id] of [["state", "review-state"], ["reason", "review-reason"], ["rule", "review-rule"], ["from", "review-from"], ["to", "review-to"]]) {
    const v = $(id).value.trim();
    if (v) q.set(k, v);
  }
  const who = await picked($("review-employee"));
  if (who) q.set("employee", who.id);
  const res = await call("GET", "/compliance/reviews?" + q);
  state.reviews = res;
  const rows = (res.items || []).map((it) => {
    const tr_ = el("tr", { onclick: () => run(() => openReview(it.id)), tabIndex: 0 },
      el("td", { textContent: String(it.id) }), el("td", { textContent: when(it.created_at).slice(0, 16) }),
      el("td", { textContent: whyWords(it) }), el("td", { textContent: it.employee_name || it.employee }),
      el("td", { textContent: it.contact_name || it.contact }),
      el("td", { className: "state-" + it.state, textContent: tr(reviewStateWords[it.state] || it.state) + (it.decision ? " · " + tr(decisionWords[it.decision] || it.decision) : "") }),
      el("td", { textContent: it.assignee_name || "" }));
    tr_.dataset.item = String(it.id);
    tr_.onkeydown = (e) => { if (e.key === "Enter") run(() => openReview(it.id)); };
    if (state.review && state.review.item.id === it.id) tr_.setAttribute("aria-current", "true");
    return tr_;
  });
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colSpan: 7, className: "empty", textContent: tr("Nothing to review here.") })));
  $("review-rows").replaceChildren(...rows);
  setText($("review-page"), tr("page {page} of {pages} · {n} items", { page: res.page, pages: res.pages, n: res.total }));
  $("review-prev").disabled = res.page <= 1;
  $("review-next").disabled = res.page >= res.pages;
}

async function openReview(id) {
  const d = await call("GET", "/compliance/reviews/" + id);
  state.review = d;
  renderReview(d);
  for (const row of document.querySelectorAll("#review-rows tr")) row.setAttribute("aria-current", row.dataset.item === String(id) ? "true" : "false");
  $("review-item").scrollIntoView({ block: "nearest" });
}

function renderReview(d) {
  const it = d.item;
  $("review-item").hidden = false;
  $("review-item-title").textContent = tr("Item {id}: {why}", { id: it.id, why: whyWords(it) });
  $("review-item-detail").textContent = tr("{employee} with {customer} · chat {chat} · {state}", {
    employee: it.employee_name || it.employee, customer: it.contact_name || it.contact, chat: it.chat_id, state: tr(reviewStateWords[it.state] || it.state) }) +
    (it.assignee_name ? " · " + tr("reviewer: {who}", { who: it.assignee_name }) : "");
  $("review-assign-me").hidden = it.state === "closed";
  $("review-decide").hidden = it.state === "closed";
  const decision = $("review-decision");
  for (const o of decision.options) o.disabled = it.state === "escalated" && o.value === "escalate";
  if (decision.selectedOptions[0] && decision.selectedOptions[0].disabled) decision.value = "close";
  $("review-history").replaceChildren(...d.history.map((s) => {
    let what = tr(stepWords[s.step] || s.step);
    if (s.step === "opened") what += " · " + (s.reason === "sample" ? tr("drawn in the sample") : tr("flagged by {rules}", { rules: (s.rules || []).map(ruleName).join(", ") }));
    if (s.step === "assigned") what += " · " + tr("to {who}", { who: s.to.replace(/^compliance:/, "") });
    if (s.step === "decided") what += " · " + tr(decisionWords[s.reason] || s.reason);
    const li = el("li", {}, el("time", { textContent: when(s.at) }), " ", el("strong", { textContent: s.actor_name }), " ", what);
    if (s.note) li.append(el("span", { className: "note", textContent: s.note }));
    return li;
  }));
  const list = $("review-transcript");
  list.replaceChildren(...d.transcript.entries.map((e) => {
    const node = entryNode(e);
    if (d.focus && e.message_id === d.focus) node.classList.add("focus");
    return node;
  }));
  if (d.transcript.entries.length === 0) list.append(el("li", { className: "empty", textContent: tr("Nothing archived around it.") }));
}

async function loadSampleSetting() {
  const s = await call("GET", "/compliance/reviews/settings");
  $("sample-percent").value = String(s.sample_percent);
}

async function loadReport() {
  const q = new URLSearchParams();
  for (const [k, id] of [["from", "report-from"], ["to", "report-to"]]) if ($(id).value) q.set(k, $(id).value);
  const rep = await call("GET", "/compliance/reviews/report?" + q);
  const sectionWords = { total: "all items", reason: "why", rule: "rule", decision: "decision", backlog: "backlog by age" };
  const keyWords = { flag: "flagged", sample: "sampled", all: "all", ...decisionWords };
  $("report-rows").replaceChildren(...rep.rows.map((r) => el("tr", {}, el("td", { textContent: tr(sectionWords[r.section] || r.section) }),
    el("td", { textContent: r.section === "rule" ? ruleName(r.key).replace(/ \(.*\)$/, "") : tr(keyWords[r.key] || r.key) }),
    ...[r.items, r.open, r.assigned, r.escalated, r.closed].map((n) => el("td", { className: "num", textContent: String(n) })),
    el("td", { textContent: since(r.median_seconds, r.decided) }), el("td", { textContent: since(r.p90_seconds, r.decided) }))));
}

function reviewHandlers() {
  $("review-filter").onsubmit = (e) => { e.preventDefault(); run(() => loadReviews(1)); };
  $("review-prev").onclick = () => run(() => loadReviews(state.reviews.page - 1));
  $("review-next").onclick = () => run(() => loadReviews(state.reviews.page + 1));
  $("review-assign-me").onclick = () => run(async () => {
    await call("POST", "/compliance/reviews/" + state.review.item.id + "/assign", { assignee: "me" });
    await openReview(state.review.item.id); await loadReviews(state.reviews ? state.reviews.page : 1);
  });
  $("review-decide").onsubmit = (e) => { e.preventDefault(); run(async () => {
    const id = state.review.item.id;
    await call("POST", "/compliance/reviews/" + id + "/decide", { decision: $("review-decision").value, note: $("review-note").value });
    $("review-note").value = "";
    await openReview(id); await loadReviews(state.reviews ? state.reviews.page : 1);
  }); };
  $("sample-form").onsubmit = (e) => { e.preventDefault(); run(async () => {
    const s = await call("PUT", "/compliance/reviews/settings", { sample_percent: Number($("sample-percent").value) });
    status("sample-status", tr("Saved: {p} % of each employee's conversations are drawn each day.", { p: s.sample_percent }));
  }); };
  $("report-form").onsubmit = (e) => { e.preventDefault(); run(loadReport); };
  for (const format of ["csv", "jsonl"]) {
    $("report-" + format).onclick = () => run(async () => {
      const x = await call("POST", "/compliance/reviews/report/export", { format, from: $("report-from").value, to: $("report-to").value });
      status("report-status", tr("Export {id} started: download it under Compliance › Exports; wxteams verify-export checks its signature.", { id: x.id }));
    });
  }
}

// ---- Start ------------------------------------------------------------------------------------

// relabel redraws what the language changes: the static words (i18n.js) and the open page.
function relabel() {
  applyLanguage(document);
  if (state.sandbox) $("who").textContent = tr("Sandbox administrator");
  // The live archive is read again, in the new words.
  state.timelineAfter = 0;
  timelineMessages.clear();
  $("timeline").replaceChildren();
  if (state.tab) openTab(state.tab);
  if (state.transcript) renderTranscript(state.transcript);
}

window.addEventListener("DOMContentLoaded", () => run(async () => {
  $("lang").value = startLanguage();
  applyLanguage(document);
  $("lang").onchange = () => { chooseLanguage($("lang").value); relabel(); };
  const me = await call("GET", "/whoami");
  state.sandbox = me.sandbox;
  $("who").textContent = me.sandbox ? tr("Sandbox administrator") : me.name;
  for (const b of document.querySelectorAll(".tab")) b.onclick = () => openTab(b.dataset.tab);
  pickers();
  usersHandlers();
  complianceHandlers();
  transcriptHandlers();
  rulesHandlers();
  reviewHandlers();
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
