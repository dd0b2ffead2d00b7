// The dataset review page (served by recipe/review_page.py).
//
// It lists the trajectories, opens one span by span, and stages the reviewer's changes
// (span edits, drops with a reason, restores) until one Save posts them all to /api/save.
// Dataset text is model output and untrusted: it reaches the page only as text (el() and
// textContent, a textarea's value), never as HTML.
"use strict";

const SPAN_LABELS = {
  prompt: "prompt",
  model: "model",
  hint: "hint",
  tool_code: "tool code",
  tool_output: "tool output",
};

const state = {
  rows: [], // one per trajectory, as /api/trajectories lists them
  details: new Map(), // trajectory id -> the trajectory with its spans, as last loaded or saved
  staged: new Map(), // trajectory id -> {spans: Map(span index -> new text), status: null | {action, reason}}
  openId: null,
  saving: false,
};

const $ = (id) => document.getElementById(id);

// A DOM element; strings among the children become text nodes, never markup.
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "className") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  let body = {};
  try {
    body = await response.json();
  } catch {
    // not JSON: the status line says what happened
  }
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function showMessage(lines, kind) {
  const box = $("message");
  const items = [].concat(lines);
  box.className = kind;
  box.replaceChildren(items.length > 1 ? el("ul", {}, items.map((line) => el("li", {}, line))) : items[0]);
  box.hidden = false;
}

// -- the dataset -----------------------------------------------------------------------------

function showSummary(summary) {
  if (summary.name) {
    $("dataset-name").textContent = summary.name;
    document.title = `Review: ${summary.name}`;
  }
  const c = summary.counts;
  $("dataset-counts").textContent =
    `${c.trajectories} trajectories: ${c.kept} kept, ${c.dropped_in_review} dropped in review, ` +
    `${c.flagged} flagged, ${c.edited} edited`;
  showCard(summary.card);
  if (summary.sources) {
    $("filter-source").replaceChildren(
      el("option", { value: "" }, "any"),
      ...summary.sources.map((source) => el("option", { value: source }, source || "(none)")),
    );
  }
}

// The card as simple HTML: its YAML header folded away, then one heading and block per "## " section.
function showCard(card) {
  const yamlEnd = card.startsWith("---\n") ? card.indexOf("\n---\n", 4) : -1;
  const headerEnd = yamlEnd < 0 ? 0 : yamlEnd + 5;
  const [title, ...sections] = card.slice(headerEnd).split(/^(?=## )/m);
  $("card").replaceChildren(
    el("details", {}, el("summary", {}, "YAML header (what the Hugging Face Hub reads)"),
      el("pre", {}, card.slice(0, headerEnd))),
    el("pre", {}, title.trim()),
    ...sections.map((section) => {
      const lineEnd = section.indexOf("\n");
      return el("section", {}, el("h3", {}, section.slice(3, lineEnd)), el("pre", {}, section.slice(lineEnd + 1).trim()));
    }),
  );
}

async function loadDataset() {
  const [summary, list] = await Promise.all([api("/api/dataset"), api("/api/trajectories")]);
  showSummary(summary);
  state.rows = list.trajectories;
  renderList();
}

// -- the list --------------------------------------------------------------------------------

function numberOrNull(id) {
  const value = $(id).value.trim();
  return value === "" ? null : Number(value);
}

function currentFilters() {
  return {
    problem: $("filter-problem").value.trim().toLowerCase(),
    source: $("filter-source").value,
    tools: numberOrNull("filter-tools"),
    lengthMin: numberOrNull("filter-length-min"),
    lengthMax: numberOrNull("filter-length-max"),
    status: $("filter-status").value,
  };
}

function matches(row, f) {
  if (f.problem && !row.problem_id.toLowerCase().includes(f.problem) && !row.id.toLowerCase().includes(f.problem)) {
    return false;
  }
  if (f.source && row.source !== f.source) return false;
  if (f.tools !== null && row.tool_calls < f.tools) return false;
  if (f.lengthMin !== null && row.response_chars < f.lengthMin) return false;
  if (f.lengthMax !== null && row.response_chars > f.lengthMax) return false;
  switch (f.status) {
    case "kept":
    case "dropped":
      return row.status === f.status;
    case "flagged":
      return row.flags.length > 0;
    case "edited":
      return row.edited;
    case "staged":
      return state.staged.has(row.id);
    default:
      return true;
  }
}

function statusBadges(row) {
  const staged = state.staged.get(row.id);
  return [
    el("span", { className: `badge status-${row.status}` }, row.status),
    row.flags.length ? el("span", { className: "badge badge-flagged", title: row.flags.join("\n") }, "flagged") : null,
    row.edited ? el("span", { className: "badge badge-edited" }, "edited") : null,
    staged ? el("span", { className: "badge badge-staged" }, staged.status ? `${staged.status.action} staged` : "staged") : null,
  ];
}

function renderList() {
  const f = currentFilters();
  const shown = state.rows.filter((row) => matches(row, f));
  $("trajectory-list").tBodies[0].replaceChildren(
    ...shown.map((row) =>
      el(
        "tr",
        {
          dataset: { id: row.id },
          className: row.id === state.openId ? "open" : "",
          onclick: () => openTrajectory(row.id),
        },
        el("td", { className: "id" }, row.id),
        el("td", {}, row.problem_id),
        el("td", {}, row.source),
        el("td", { className: "number" }, String(row.tool_calls)),
        el("td", { className: "number" }, String(row.response_chars)),
        el("td", {}, statusBadges(row)),
      ),
    ),
  );
  $("list-count").textContent = `Showing ${shown.length} of ${state.rows.length} trajectories`;
}

// -- one trajectory --------------------------------------------------------------------------

async function openTrajectory(id) {
  state.openId = id;
  renderList();
  try {
    if (!state.details.has(id)) {
      state.details.set(id, await api(`/api/trajectories/${encodeURIComponent(id)}`));
    }
  } catch (error) {
    showMessage(`Could not open ${id}: ${error.message}`, "error");
    return;
  }
  if (state.openId === id) renderTrajectory();
}

function stagedFor(id) {
  if (!state.staged.has(id)) state.staged.set(id, { spans: new Map(), status: null });
  return state.staged.get(id);
}

function unstageIfEmpty(id) {
  const staged = state.staged.get(id);
  if (staged && staged.spans.size === 0 && !staged.status) state.staged.delete(id);
}

function stageEdit(id, span, text) {
  const hadStaged = state.staged.has(id);
  const staged = stagedFor(id);
  if (text === span.text) staged.spans.delete(span.index);
  else staged.spans.set(span.index, text);
  unstageIfEmpty(id);
  if (hadStaged !== state.staged.has(id)) renderList();
  updateSaveBar();
  return staged.spans.has(span.index);
}

function stageStatus(id, status) {
  stagedFor(id).status = status;
  unstageIfEmpty(id);
  renderList();
  renderTrajectory();
  updateSaveBar();
}

function stageDrop(id) {
  const reason = $("drop-reason").value.trim();
  if (!reason) {
    showMessage("A drop needs a reason: it is recorded in the dataset card.", "error");
    $("drop-reason").focus();
    return;
  }
  stageStatus(id, { action: "drop", reason });
}

function reviewActions(t) {
  const staged = state.staged.get(t.id);
  if (staged && staged.status) {
    const what = staged.status.action === "drop" ? `Drop staged: ${staged.status.reason}` : "Restore staged";
    return [
      el("span", { id: "staged-status" }, what),
      el("button", { type: "button", id: "unstage-button", onclick: () => stageStatus(t.id, null) }, "Undo"),
    ];
  }
  if (t.status === "dropped") {
    return [
      el("span", { className: "dropped-reason" }, `Dropped: ${t.reason}`),
      el("button", { type: "button", id: "restore-button", onclick: () => stageStatus(t.id, { action: "restore" }) },
        "Restore"),
    ];
  }
  return [
    el("input", {
      type: "text",
      id: "drop-reason",
      placeholder: "why drop it (required)",
      size: 40,
      onkeydown: (event) => event.key === "Enter" && stageDrop(t.id),
    }),
    el("button", { type: "button", id: "drop-button", onclick: () => stageDrop(t.id) }, "Drop"),
  ];
}

function spanElement(t, span, staged) {
  const stale = t.flags.includes(`stale output: span ${span.index}`);
  const section = el("section", {
    className: `span span-${span.type}${stale ? " stale" : ""}`,
    dataset: { kind: span.type, index: String(span.index) },
  });
  const header = el(
    "header",
    {},
    el("span", { className: "span-label" }, SPAN_LABELS[span.type] || span.type),
    el("span", { className: "muted" }, ` span ${span.index}`),
    span.hint_id ? el("span", { className: "muted" }, ` hint ${span.hint_id}`) : null,
    span.editable ? null : el("span", { className: "muted" }, " read-only"),
    stale ? el("span", { className: "badge badge-flagged" }, "stale: the code changed, this output was not run again") : null,
  );
  let body;
  if (span.editable) {
    const text = staged && staged.spans.has(span.index) ? staged.spans.get(span.index) : span.text;
    body = el("textarea", {
      className: "span-text",
      spellcheck: "false",
      rows: Math.min(30, Math.max(2, text.split("\n").length + 1)),
      "aria-label": `${SPAN_LABELS[span.type]} span ${span.index}`,
    });
    body.value = text;
    body.addEventListener("input", () => section.classList.toggle("staged", stageEdit(t.id, span, body.value)));
    section.classList.toggle("staged", text !== span.text);
  } else {
    body = el("pre", { className: "span-text" }, span.text);
  }
  section.append(header, body);
  return section;
}

function renderTrajectory() {
  const t = state.details.get(state.openId);
  if (!t) return;
  const staged = state.staged.get(t.id);
  $("trajectory-empty").hidden = true;
  $("trajectory").hidden = false;
  $("trajectory-id").textContent = t.id;
  const facts = [
    ["problem", t.problem_id],
    ["source", t.source],
    ["task", t.task_type],
    ["tool calls", t.tool_calls],
    ["response chars", t.response_chars],
    ["generated tokens", t.generated_tokens],
    ["reference", t.reference],
    ["extracted", t.extracted],
    ["status", t.status === "dropped" ? `dropped: ${t.reason}` : t.status],
  ];
  $("trajectory-meta").replaceChildren(
    ...facts
      .filter(([, value]) => value !== null && value !== undefined && value !== "")
      .flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, String(value))]),
  );
  $("flags").replaceChildren(...t.flags.map((flag) => el("li", { className: "flag" }, flag)));
  $("review-actions").replaceChildren(...reviewActions(t));
  $("messages").replaceChildren(
    ...t.messages.map((m) =>
      el("section", { className: "message" }, el("header", {}, el("span", { className: "span-label" }, m.role)),
        el("pre", { className: "span-text" }, m.content)),
    ),
  );
  $("spans").replaceChildren(...t.spans.map((span) => spanElement(t, span, staged)));
}

// -- saving ----------------------------------------------------------------------------------

function stagedChanges() {
  const changes = [];
  for (const [id, staged] of state.staged) {
    const edits = [...staged.spans].sort((a, b) => a[0] - b[0]);
    for (const [index, text] of edits) changes.push({ trajectory_id: id, action: "edit", span: index, text });
    if (staged.status) changes.push({ trajectory_id: id, action: staged.status.action, reason: staged.status.reason || "" });
  }
  return changes;
}

function updateSaveBar() {
  const n = stagedChanges().length;
  $("staged-count").textContent = n ? `${n} staged change${n === 1 ? "" : "s"}` : "No staged changes";
  $("save-button").disabled = n === 0 || state.saving;
  $("discard-button").disabled = n === 0 || state.saving;
}

function describeSave(result) {
  const lines = result.edits.map((e) => {
    const where = e.span === null ? "" : ` span ${e.span} (${e.span_type})`;
    return `${e.action} ${e.trajectory_id}${where}${e.reason ? `: ${e.reason}` : ""}`;
  });
  for (const t of result.trajectories) {
    if (t.flags.length) lines.push(`${t.id} is flagged: ${t.flags.join("; ")}`);
  }
  return [`Saved ${result.edits.length} change${result.edits.length === 1 ? "" : "s"} to the dataset.`, ...lines];
}

async function save() {
  const changes = stagedChanges();
  if (!changes.length) return;
  state.saving = true;
  updateSaveBar();
  showMessage("Saving…", "info");
  try {
    const result = await api("/api/save", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ by: $("reviewer").value.trim(), changes }),
    });
    state.staged.clear();
    const updated = new Map();
    for (const t of result.trajectories) {
      state.details.set(t.id, t);
      const { spans, messages, reference, extracted, ...row } = t;
      updated.set(t.id, row);
    }
    state.rows = state.rows.map((row) => updated.get(row.id) || row);
    showSummary({ counts: result.counts, card: result.card });
    showMessage(describeSave(result), "ok");
    renderList();
    renderTrajectory();
  } catch (error) {
    showMessage(`Not saved (your changes are still staged): ${error.message}`, "error");
  } finally {
    state.saving = false;
    updateSaveBar();
  }
}

function discard() {
  state.staged.clear();
  $("message").hidden = true;
  renderList();
  renderTrajectory();
  updateSaveBar();
}

// -- wiring ----------------------------------------------------------------------------------

function showView(card) {
  $("card-view").hidden = !card;
  $("trajectories-view").hidden = card;
  $("show-card").classList.toggle("active", card);
  $("show-trajectories").classList.toggle("active", !card);
}

document.addEventListener("DOMContentLoaded", () => {
  $("filters").addEventListener("input", renderList);
  $("filters").addEventListener("change", renderList);
  $("filters").addEventListener("submit", (event) => event.preventDefault());
  $("save-button").addEventListener("click", save);
  $("discard-button").addEventListener("click", discard);
  $("show-card").addEventListener("click", () => showView(true));
  $("show-trajectories").addEventListener("click", () => showView(false));
  window.addEventListener("beforeunload", (event) => {
    if (state.staged.size) event.preventDefault(); // the browser asks before staged changes are lost
  });
  loadDataset().catch((error) => showMessage(`Could not load the dataset: ${error.message}`, "error"));
});
