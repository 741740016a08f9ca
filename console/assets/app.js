// The wxteams console: plain JavaScript, no framework. Every call goes to /console/api, which
// forwards to the admin and compliance APIs with the right token.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { sandbox: false, employee: "", customer: "", timelineAfter: 0, tab: "" };

async function call(method, path, body) {
  const opts = { method, headers: { "X-Wxteams-Console": "1" } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch("/console/api" + path, opts);
  if (resp.status === 401 && !state.sandbox) {
    location.href = "/console/login";
    throw new Error("signing in");
  }
  const type = resp.headers.get("Content-Type") || "";
  const data = type.includes("application/json") ? await resp.json() : await resp.blob();
  if (!resp.ok) {
    throw new Error((data && data.error) || resp.statusText);
  }
  return data;
}

function showError(err) {
  const box = $("error");
  if (!err) { box.hidden = true; return; }
  box.textContent = err.message || String(err);
  box.hidden = false;
}

async function run(fn) {
  try { showError(null); await fn(); } catch (err) { showError(err); }
}

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const c of children) node.append(c);
  return node;
}

const when = (t) => new Date(t).toISOString().replace("T", " ").slice(0, 19);

// ---- Tabs -------------------------------------------------------------------------------------

function openTab(name) {
  state.tab = name;
  for (const b of document.querySelectorAll(".tab")) b.setAttribute("aria-current", b.dataset.tab === name ? "page" : "false");
  for (const p of document.querySelectorAll(".panel")) p.hidden = p.id !== name;
  if (name === "users") run(loadUsers);
  if (name === "compliance") { run(loadExports); run(loadHolds); }
  if (name === "policy") run(async () => { $("policy-json").textContent = JSON.stringify(await call("GET", "/policy"), null, 2); });
}

// ---- Sandbox ----------------------------------------------------------------------------------

function fillSelect(select, options, current) {
  const keep = select.value || current;
  select.replaceChildren(...options.map(([value, label]) => el("option", { value, textContent: label })));
  if (options.some(([v]) => v === keep)) select.value = keep;
}

async function refreshState() {
  const st = await call("GET", "/sandbox/state");
  $("now").textContent = when(st.now) + " UTC";
  $("jumped").textContent = st.jumped !== "0s" ? "(clock moved " + st.jumped + ")" : "";
  const enabled = st.employees.filter((e) => e.enabled);
  fillSelect($("employee"), st.employees.map((e) => [e.id, e.name + (e.enabled ? "" : " (WeChat not enabled)")]), enabled[0] && enabled[0].id);
  fillSelect($("scan-employee"), enabled.map((e) => [e.id, e.name]));
  fillSelect($("customer"), st.customers.map((c) => [c.openid, c.name]));
  state.employee = $("employee").value;
  state.customer = $("customer").value;
  const me = st.customers.find((c) => c.openid === state.customer);
  $("chat-status").textContent = me ? (me.chat ? "Chat: " + me.chat : "Not connected to anyone yet: scan an employee's QR code.") : "Make a customer first.";
}

function renderPane(list, items, who) {
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  list.replaceChildren(...items.map((it) => {
    const li = el("li", { className: it.mine ? "mine" : it.note ? "note" : "theirs" });
    if (it.text) li.append(el("p", { textContent: it.text }));
    if (it.image) li.append(el("img", { src: it.image, alt: "image" }));
    for (const a of it.actions || []) {
      li.append(el("button", { type: "button", className: "action", textContent: a.title,
        onclick: () => run(async () => { await call("POST", "/sandbox/teams/" + who + "/click", { activity: it.id, verb: a.verb, data: a.data }); await refreshPanes(); }) }));
    }
    li.append(el("time", { textContent: when(it.at).slice(11) }));
    return li;
  }));
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

async function tick() {
  if (state.tab !== "sandbox") return;
  try {
    await refreshState();
    await refreshPanes();
    await refreshTimeline();
  } catch (err) { showError(err); }
}

function sandboxHandlers() {
  $("employee").onchange = () => { state.employee = $("employee").value; run(refreshPanes); };
  $("customer").onchange = () => { state.customer = $("customer").value; run(tick); };
  $("teams-form").onsubmit = (e) => { e.preventDefault(); const t = $("teams-text"); run(async () => {
    await call("POST", "/sandbox/teams/" + state.employee + "/say", { text: t.value }); t.value = ""; await tick(); }); };
  $("wechat-form").onsubmit = (e) => { e.preventDefault(); const t = $("wechat-text"); run(async () => {
    await call("POST", "/sandbox/wechat/" + state.customer + "/say", { text: t.value }); t.value = ""; await tick(); }); };
  $("leave").onclick = () => run(async () => { await call("POST", "/sandbox/wechat/" + state.customer + "/say", { text: "#LEAVE" }); await tick(); });
  $("new-customer").onclick = () => run(async () => {
    const r = await call("POST", "/sandbox/wechat", {});
    $("customer").value = r.openid; state.customer = r.openid; await refreshState(); $("customer").value = r.openid; state.customer = r.openid; await tick();
  });
  $("scan").onclick = () => run(async () => {
    if (!state.customer) throw new Error("Make a customer first.");
    await call("POST", "/sandbox/wechat/" + state.customer + "/scan", { employee: $("scan-employee").value });
    $("employee").value = $("scan-employee").value; state.employee = $("employee").value; await tick();
  });
  $("advance-24h").onclick = () => run(async () => { await call("POST", "/sandbox/clock", { advance: "24h" }); await tick(); });
  $("advance-48h").onclick = () => run(async () => { await call("POST", "/sandbox/clock", { advance: "48h" }); await tick(); });
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
    rows.push(el("tr", {}, el("td", { textContent: u.name || "—" }), el("td", { textContent: u.id }),
      el("td", { textContent: u.wechat_enabled ? "enabled" : "disabled" }),
      el("td", { textContent: u.teams_installed ? (u.teams_reachable ? "app installed" : "unreachable") : "not installed" }), qr, el("td", {}, toggle)));
  }
  $("users-rows").replaceChildren(...rows);
}

function usersHandlers() {
  $("enable-form").onsubmit = (e) => { e.preventDefault(); run(async () => {
    await call("PUT", "/admin/users/" + encodeURIComponent($("enable-id").value.trim()) + "/wechat", { name: $("enable-name").value });
    $("enable-id").value = ""; $("enable-name").value = ""; await loadUsers(); }); };
}

// ---- Compliance -------------------------------------------------------------------------------

function complianceHandlers() {
  $("search-form").onsubmit = (e) => { e.preventDefault(); run(async () => {
    const q = new URLSearchParams();
    for (const [k, id] of [["employee", "search-employee"], ["contact", "search-contact"], ["from", "search-from"], ["to", "search-to"], ["q", "search-q"]]) {
      if ($(id).value) q.set(k, $(id).value);
    }
    const res = await call("GET", "/compliance/records?" + q);
    $("search-rows").replaceChildren(...res.records.map((r) => el("tr", {}, el("td", { textContent: when(r.at) }),
      el("td", { textContent: r.stream + " #" + r.seq }), el("td", { textContent: r.kind }), el("td", { textContent: r.actor }),
      el("td", { textContent: r.text || "" }))));
    if (res.truncated) showError(new Error("More records match; narrow the search."));
  }); };
  $("export-form").onsubmit = (e) => { e.preventDefault(); run(async () => {
    const formats = [...document.querySelectorAll("input[name=format]:checked")].map((c) => c.value);
    await call("POST", "/compliance/exports", { formats, from: $("export-from").value, to: $("export-to").value });
    await loadExports();
    setTimeout(() => run(loadExports), 1500);
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

async function loadExports() {
  const list = (await call("GET", "/compliance/exports")).exports || [];
  $("export-rows").replaceChildren(...list.map((x) => {
    const get = el("td");
    if (x.state === "done") {
      get.append(el("button", { type: "button", textContent: "Download", onclick: () => run(async () => {
        const full = await call("GET", "/compliance/exports/" + x.id);
        const blob = await call("GET", "/compliance/exports/" + x.id + "/download");
        const a = el("a", { href: URL.createObjectURL(blob), download: "wxteams-" + x.id + ".zip" });
        document.body.append(a); a.click(); a.remove();
        showError(null);
        get.append(" " + full.manifest.counts.records + " records");
      }) }));
    }
    return el("tr", {}, el("td", { textContent: x.id }), el("td", { textContent: x.state + (x.error ? ": " + x.error : "") }), el("td"), get);
  }));
}

async function loadHolds() {
  const holds = (await call("GET", "/compliance/holds")).holds || [];
  $("hold-rows").replaceChildren(...holds.map((h) => el("tr", {}, el("td", { textContent: h.id }), el("td", { textContent: h.scope }),
    el("td", { textContent: h.subject }), el("td", { textContent: h.reason }), el("td", { textContent: when(h.placed_at) + " by " + h.placed_by }),
    el("td", {}, el("button", { type: "button", textContent: "Lift", onclick: () => run(async () => {
      const reason = prompt("Why is the hold lifted?");
      if (!reason) return;
      await call("DELETE", "/compliance/holds/" + h.id + "?reason=" + encodeURIComponent(reason)); await loadHolds(); }) })))));
}

// ---- Start ------------------------------------------------------------------------------------

window.addEventListener("DOMContentLoaded", () => run(async () => {
  const me = await call("GET", "/whoami");
  state.sandbox = me.sandbox;
  $("who").textContent = me.name;
  for (const b of document.querySelectorAll(".tab")) b.onclick = () => openTab(b.dataset.tab);
  usersHandlers();
  complianceHandlers();
  if (me.sandbox) {
    $("mode").hidden = false;
    $("tab-sandbox").hidden = false;
    sandboxHandlers();
    openTab("sandbox");
    await tick();
  } else {
    openTab("users");
  }
}));
