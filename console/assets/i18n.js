// The console's words in English and Simplified Chinese. The page follows the browser's language
// (Accept-Language, which sets <html lang>, else navigator.language) until the person picks one;
// that choice is kept in the browser. English words are the keys: a word without a translation
// shows in English. What wxteams says in its answers (errors, notices, reasons) stays in English.
"use strict";

const zh = {
  // header and tabs
  "Sandbox": "沙盒", "Users": "用户", "Compliance": "合规", "Policy": "策略", "Language": "语言", "Console": "控制台",
  "Sandbox administrator": "沙盒管理员",
  // sandbox
  "Sandbox time:": "沙盒时间：", "Jump 24 h": "快进 24 小时", "Jump 48 h": "快进 48 小时",
  "Moving the clock lets WeChat's windows close and wxteams' 24 h and 48 h rules fire.": "拨动时钟会让微信的会话窗口关闭，并触发 wxteams 的 24 小时和 48 小时规则。",
  "Employee": "员工", "Customer": "客户", "New customer": "新客户", "Scan the QR code of": "扫描二维码：",
  "Employee whose QR code to scan": "要扫描其二维码的员工",
  "Message to your WeChat contact": "发给微信联系人的消息", "Message to the employee": "发给员工的消息",
  "Type a message, or help": "输入消息，或输入 help", "Type a message": "输入消息", "Send": "发送", "Leave the chat": "退出会话",
  "WeChat": "微信", "Compliance archive (live)": "合规存档（实时）", "What the marks mean": "标记说明",
  "a message, as received": "收到的消息", "a notice of wxteams, to the customer or an employee": "wxteams 发给客户或员工的通知",
  "delivered: the channel accepted it": "已送达：渠道已接收", "queued, or back in the queue": "已排队，或退回队列",
  "released from the queue, or a retry is due": "已出队，或即将重试", "failed for good": "最终失败",
  "outcome unknown: it may have arrived; never sent again": "结果未知：可能已送达，不会重发",
  "cancelled before it went out": "发出前已取消", "refused: not accepted at all": "已拒绝：未被接受",
  "the chat's routing, members and status": "会话的路由、成员和状态",
  "Receipts are shown under the message they are about.": "回执显示在对应消息的下方。",
  "(WeChat not enabled)": "（未开通微信）", "(clock moved {d})": "（时钟已拨快 {d}）", "Chat: {s}": "会话：{s}",
  "Not connected to anyone yet: scan an employee's QR code.": "尚未连接任何人：请扫描员工的二维码。",
  "Make a customer first.": "请先创建一个客户。",
  "Nobody has WeChat enabled: enable an employee on the Users page first.": "还没有人开通微信：请先在“用户”页面为员工开通。",
  "{name} (colleague)": "{name}（同事）", "image": "图片",
  "waiting for the customer to write first": "等待客户先发消息", "active": "进行中", "waiting for the customer's reply": "等待客户回复",
  "inactive": "不活跃", "left": "已退出", "closed": "已关闭",
  // fates
  "Sending": "发送中", "Queued": "已排队", "Delivered": "已送达", "Not delivered": "未送达", "Outcome unknown": "结果未知",
  "Cancelled": "已取消", "Refused": "已拒绝",
  // users
  "Employees with WeChat enabled get the Teams app and their own WeChat QR code. Every change is archived with who made it.":
    "开通微信的员工会获得 Teams 应用和自己的微信二维码。每次变更都会连同操作人一起存档。",
  "Entra object id or e-mail": "Entra 对象 ID 或电子邮件", "Name (optional)": "姓名（可选）", "Enable WeChat": "开通微信",
  "Name": "姓名", "Teams": "Teams", "QR code": "二维码", "enabled": "已开通", "not enabled": "未开通",
  "app installed": "已安装应用", "unreachable": "无法联系", "not installed": "未安装", "Enable": "开通", "Disable": "停用",
  "Chats": "会话", "Hide chats": "隐藏会话", "Loading…": "加载中…", "Nobody yet: enable an employee above.": "暂无用户：请在上方为员工开通。",
  "WeChat QR code of {name}": "{name} 的微信二维码", "{name} has no chats yet.": "{name} 还没有会话。",
  "Remove": "移除", "Remove {name} from the chat": "将 {name} 移出会话", "Colleague to add": "要添加的同事",
  "Add to the chat": "加入会话", "Everyone with WeChat is in this chat.": "所有开通微信的员工都已在此会话中。", "Members:": "成员：", "chat {id}": "会话 {id}", "{n} queued": "{n} 条排队中",
  "WeChat enabled for {name}, but the Teams app was not installed: {why}": "已为 {name} 开通微信，但 Teams 应用未安装：{why}",
  // search
  "Search the record": "检索存档", "Person": "人员", "Name, e-mail or id": "姓名、电子邮件或 ID", "From": "从", "To": "至",
  "Text": "文本", "Search": "检索", "Time (UTC)": "时间（UTC）", "Chat": "会话", "Kind": "类型", "Who": "人员",
  "Searching…": "检索中…", "No records match.": "没有匹配的记录。", ", and more match: narrow the search.": "，还有更多匹配：请缩小检索范围。",
  "Read the conversation": "查看对话", "customer's message": "客户消息", "employee's message": "员工消息", "notice": "通知",
  "employee": "员工", "customer": "客户", "chat": "会话", "Nobody matches.": "没有匹配的人。",
  "Nobody matches “{q}”.": "没有与“{q}”匹配的人。", "Several people match “{q}”: pick one from the list.": "有多人与“{q}”匹配：请从列表中选择一位。",
  // transcript
  "Conversation": "对话记录", "Whose conversations": "谁的对话", "Only by or to": "仅限发送或接收人", "Show": "显示",
  "Messages": "消息", "Notices": "通知", "Chat events": "会话事件", "Previous": "上一页", "Next": "下一页",
  "Export what is shown": "导出当前显示内容", "Export what is shown ({n} records)": "导出当前显示内容（{n} 条记录）",
  "everyone": "所有人", "Chat {id} with {name}": "与 {name} 的会话 {id}", "members: {names}": "成员：{names}", "nobody": "无",
  "Nothing in this chat matches.": "此会话中没有匹配的内容。", "page {page} of {pages} · {n} entries": "第 {page} 页，共 {pages} 页 · {n} 条",
  "to {name}": "发给 {name}", "Reading…": "读取中…", "Pick a person with a chat first.": "请先选择一位有会话的人员。",
  "{name} is in no chat.": "{name} 不在任何会话中。", "Choose what to show: messages, notices or chat events.": "请选择要显示的内容：消息、通知或会话事件。",
  "Export started: the {n} records shown, listed under Exports.": "已开始导出：当前显示的 {n} 条记录，见“导出”。",
  // exports, verification, holds
  "Exports": "导出", "Formats (JSONL is always included)": "格式（始终包含 JSONL）", "EML (Global Relay)": "EML（Global Relay）",
  "Person (optional)": "人员（可选）", "Everyone": "所有人", "Export": "导出", "State": "状态", "Formats": "格式", "Records": "记录数",
  "Download": "下载", "No exports yet.": "还没有导出。", "running": "进行中", "done": "已完成", "failed": "失败",
  "Choose at least one export format.": "请至少选择一种导出格式。",
  "Verify the archive": "校验存档", "Verify now": "立即校验",
  "Intact: {records} records and {checkpoints} signed checkpoints verified.": "完整：已校验 {records} 条记录和 {checkpoints} 个签名检查点。",
  "NOT intact: {problem}": "不完整：{problem}",
  "Legal holds": "法律保全", "Scope": "范围", "Subject": "对象", "Reason": "原因", "Place hold": "设置保全", "Placed": "设置时间",
  "Lift": "解除", "by {who}": "由 {who}", "Why is the hold lifted?": "为什么解除此保全？", "No legal holds.": "没有法律保全。",
  // policy
  "The firm's policy": "公司策略",
  "Limits, durations and every auto-message text, as wxteams applies them now (set with WXTEAMS_POLICY_FILE).":
    "wxteams 当前执行的限额、时长和每条自动消息文本（通过 WXTEAMS_POLICY_FILE 设置）。",
  "As JSON": "JSON 格式", "English": "英语", "Simplified Chinese": "简体中文", "kept for ever": "永久保留", "none": "无",
  "{n} year": "{n} 年", "{n} years": "{n} 年", "{n} day": "{n} 天", "{n} days": "{n} 天", "{n} hour": "{n} 小时", "{n} hours": "{n} 小时",
  "{n} minute": "{n} 分钟", "{n} minutes": "{n} 分钟", "{n} second": "{n} 秒", "{n} seconds": "{n} 秒",
  "{n} record": "{n} 条记录", "{n} records": "{n} 条记录", "{n} step": "{n} 个步骤", "{n} steps": "{n} 个步骤",
  // errors
  "wxteams did not answer. Is it still running?": "wxteams 没有响应。它还在运行吗？",
  "Your session has ended: signing in again.": "会话已过期：正在重新登录。",
  "wxteams answered {status} and gave no reason.": "wxteams 返回 {status}，未说明原因。",
  // rules
  "Rules": "规则", "Review": "审查", "Supervision rules": "监督规则",
  "The firm's own rules: a message that matches a block rule is not sent and its author is told which rule stopped it; a redact rule replaces the matched words before delivery; a flag rule delivers it and opens a review item. Every change is a new version, archived with who made it.":
    "公司自己的规则：匹配“拦截”规则的消息不会发出，并告知发送人是哪条规则拦截了它；“遮蔽”规则在送达前替换匹配的词语；“标记”规则照常送达并创建审查项。每次变更都是一个新版本，并连同操作人一起存档。",
  "Rule": "规则", "Version": "版本", "Action": "动作", "Directions": "方向", "Covers": "适用范围", "Terms": "词条", "New rule": "新建规则",
  "Id": "ID", "Name (employees see it)": "名称（员工可见）", "Why (told to an employee it blocks)": "原因（被拦截时告知员工）",
  "block": "拦截", "redact": "遮蔽", "flag": "标记", "employee → customer": "员工 → 客户", "customer → employee": "客户 → 员工",
  "Terms, one per line (start a line with regex: for an RE2 pattern)": "词条，每行一个（以 regex: 开头表示 RE2 正则表达式）",
  "Exceptions, one per line (a hit inside one of these does not count)": "例外，每行一个（落在其中的匹配不计）",
  "Only these employees (optional)": "仅限这些员工（可选）", "Only these groups (optional, comma-separated)": "仅限这些组（可选，逗号分隔）",
  "Replacement (redact)": "替换文本（遮蔽）", "Disabled": "已停用", "disabled": "已停用", "Save rule": "保存规则", "Cancel": "取消", "Delete rule": "删除规则",
  "Versions": "版本历史", "Try a message": "试一条消息", "Message": "消息", "Direction": "方向", "Employee (optional)": "员工（可选）", "Check": "检查",
  "Supervision groups": "监督组", "Group": "组", "Employees": "员工", "Add an employee": "添加员工", "Add to the group": "加入该组",
  "group {name}": "组 {name}", "Edit": "编辑", "No rules yet: add one below.": "还没有规则：请在下方添加。", "No groups yet.": "还没有组。",
  "Remove {name}": "移除 {name}", "Rule {id}, version {v}": "规则 {id}，版本 {v}", "deleted by {who}": "由 {who} 删除",
  "{action}, {n} terms, by {who}": "{action}，{n} 个词条，由 {who} 修改", "Choose at least one direction.": "请至少选择一个方向。",
  "term {term}": "词条 {term}", "Matches in the message:": "消息中的匹配：", "What would be delivered:": "将送达的内容：", "(nothing)": "（无）",
  "Checked against: {rules}": "检查所用规则：{rules}", "no rule": "无规则", "Saved: {id} is at version {v}.": "已保存：{id} 现为版本 {v}。",
  "Delete rule {id}? Its versions stay in the record.": "删除规则 {id}？其各版本仍保留在存档中。", "Pick the employee to add.": "请选择要添加的员工。",
  "Blocked: not delivered; the employee is told which rule.": "已拦截：不会送达；员工会被告知是哪条规则。",
  "Redacted: delivered with the matches replaced.": "已遮蔽：替换匹配内容后送达。",
  "Flagged: delivered, and a review item is opened.": "已标记：照常送达，并创建审查项。", "No rule matches: delivered as written.": "没有匹配的规则：按原文送达。",
  // review
  "Review queue": "审查队列",
  "Messages a flag rule matched, and conversations drawn in the daily sample. Every step is archived with who took it.":
    "被标记规则匹配的消息，以及每日抽样抽中的对话。每一步都会连同操作人一起存档。",
  "to review": "待审查", "open": "未处理", "assigned": "已分配", "escalated": "已升级", "all": "全部", "Why": "原因", "flagged": "被标记", "sampled": "被抽样",
  "Opened (UTC)": "创建时间（UTC）", "Reviewer": "审查人", "Assign to me": "分配给我", "Decision": "结论", "no issue": "无问题", "escalate": "升级", "close": "关闭",
  "Note": "备注", "Decide": "提交结论", "History": "历史", "The conversation around it": "前后对话", "Daily sample": "每日抽样",
  "Share of each employee's conversations drawn each day (%)": "每天抽取每位员工对话的比例（%）", "Save": "保存", "Report": "报告",
  "Export CSV": "导出 CSV", "Export JSONL": "导出 JSONL", "Section": "类别", "Key": "项目", "Items": "审查项", "Open": "未处理", "Assigned": "已分配",
  "Escalated": "已升级", "Closed": "已关闭", "Median time to review": "审查用时中位数", "90th percentile": "第 90 百分位",
  "sampled: {day}": "抽样：{day}", "flagged: {rules}": "标记：{rules}", "Nothing to review here.": "这里没有需要审查的内容。",
  "page {page} of {pages} · {n} items": "第 {page} 页，共 {pages} 页 · {n} 项", "Item {id}: {why}": "审查项 {id}：{why}",
  "{employee} with {customer} · chat {chat} · {state}": "{employee} 与 {customer} · 会话 {chat} · {state}", "reviewer: {who}": "审查人：{who}",
  "drawn in the sample": "被抽样选中", "flagged by {rules}": "被 {rules} 标记", "to {who}": "给 {who}", "Nothing archived around it.": "前后没有存档内容。", "under a minute": "不到一分钟",
  "Saved: {p} % of each employee's conversations are drawn each day.": "已保存：每天抽取每位员工 {p}% 的对话。",
  "Export {id} started: download it under Compliance › Exports; wxteams verify-export checks its signature.": "导出 {id} 已开始：请在“合规 › 导出”下载；wxteams verify-export 可校验其签名。",
  "opened": "已创建", "decided": "已作出结论", "all items": "全部审查项", "why": "原因", "rule": "规则", "decision": "结论", "backlog by age": "积压（按时长）",
};

const dictionaries = { "zh-CN": zh };
let language = "en";

// startLanguage is the person's choice, else the page's language (from Accept-Language), else
// the browser's.
function startLanguage() {
  let saved = "";
  try { saved = localStorage.getItem("wxteams.lang") || ""; } catch { /* storage off */ }
  const page = document.documentElement.lang;
  const browser = (navigator.language || "").toLowerCase().startsWith("zh") ? "zh-CN" : "en";
  language = saved === "en" || saved === "zh-CN" ? saved : page === "zh-CN" ? page : browser;
  document.documentElement.lang = language;
  return language;
}

function chooseLanguage(lang) {
  language = lang === "zh-CN" ? "zh-CN" : "en";
  document.documentElement.lang = language;
  try { localStorage.setItem("wxteams.lang", language); } catch { /* storage off: the choice lasts the page */ }
}

// tr translates an English phrase and fills in {names}.
function tr(s, vars) {
  const dict = dictionaries[language];
  let out = (dict && dict[s]) || s;
  for (const [k, v] of Object.entries(vars || {})) out = out.split("{" + k + "}").join(String(v));
  return out;
}

// applyLanguage translates the page's static words: elements marked data-t (their text), and
// data-t-placeholder, data-t-title, data-t-aria-label (those attributes).
function applyLanguage(root) {
  for (const node of root.querySelectorAll("[data-t]")) {
    if (node.dataset.en === undefined) node.dataset.en = node.textContent.trim();
    node.textContent = tr(node.dataset.en);
  }
  for (const attr of ["placeholder", "title", "aria-label"]) {
    for (const node of root.querySelectorAll("[data-t-" + attr + "]")) {
      const key = "en" + attr.replace(/-(.)/g, (_, c) => c.toUpperCase()).replace(/^./, (c) => c.toUpperCase());
      if (node.dataset[key] === undefined) node.dataset[key] = node.getAttribute(attr) || "";
      node.setAttribute(attr, tr(node.dataset[key]));
    }
  }
}
