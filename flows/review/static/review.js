// breedwatch review: one key per decision, the next item fetched as JSON without reloading the page.
// Everything shown is set through textContent and attributes, never parsed as HTML.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const state = { item: null, shownAt: 0, keys: 0, skipped: [], busy: false, drawing: false, start: null };
// Measured here and read by the browser test: decisions made and keys pressed for them.
window.reviewStats = { decisions: 0, keys: 0, undos: 0, skips: 0, errors: 0 };

function element(tag, text, attributes) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  return node;
}

function say(message, isError) {
  const status = document.getElementById("status");
  status.textContent = message;
  status.className = isError ? "error" : "";
  if (isError) window.reviewStats.errors += 1;
}

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(body || {}),
  });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function show(item) {
  state.item = item;
  state.shownAt = performance.now();
  state.keys = 0;
  state.drawing = false;
  state.start = null;
  const box = document.getElementById("item");
  box.replaceChildren();
  if (!item) {
    box.append(element("p", "The queue is empty: every item has been reviewed (or skipped). Well done."));
    document.getElementById("remaining").textContent = "0";
    box.dataset.key = "";
    return;
  }
  box.dataset.key = item.key;
  if (item.remaining !== null && item.remaining !== undefined) {
    document.getElementById("remaining").textContent = String(item.remaining);
  }
  const heading = element("h2", item.title);
  if (item.audit) heading.append(" ", element("span", "audit sample", { class: "audit", title: "drawn at random" }));
  box.append(heading, element("p", "Why: " + item.reason));
  const images = element("div", null, { id: "images" });
  for (const url of item.images || []) images.append(element("img", null, { src: url, alt: item.kind + " image" }));
  box.append(images);
  if (item.frame) box.append(frameView(item));
  const probability = item.p === null || item.p === undefined ? "no probability" : Number(item.p).toFixed(3);
  const said = item.p_label ? item.call + " (" + item.p_label + " " + probability + ")" : item.call;
  box.append(element("p", "Model says: " + said, { id: "call" }));
  const table = element("table");
  for (const [label, value] of [["model", item.model_version || "none"], ...(item.details || [])]) {
    const row = element("tr");
    row.append(element("td", label), element("td", value));
    table.append(row);
  }
  box.append(table);
  const actions = element("div", null, { id: "actions" });
  for (const action of item.actions) {
    const button = element("button", null, { type: "button", "data-key": action.key });
    button.append(element("kbd", action.key), " " + action.label);
    button.addEventListener("click", () => (action.key === "b" ? startDrawing() : decide(action.key)));
    actions.append(button);
  }
  const extra = item.kind === "face" ? [["g", "guided Grad-CAM"]] : [];
  for (const [key, label] of [...extra, ["s", "skip"], ["u", "undo"]]) {
    const button = element("button", null, { type: "button", "data-key": key });
    button.append(element("kbd", key), " " + label);
    button.addEventListener("click", () => (key === "s" ? skip() : key === "u" ? undo() : explain()));
    actions.append(button);
  }
  box.append(actions);
}

// The whole frame with the detector's boxes (the face under review in red); a box is drawn on it with the mouse.
function placeBox(node, box) {
  const [x, y, w, h] = box;
  node.style.left = 100 * x + "%";
  node.style.top = 100 * y + "%";
  node.style.width = 100 * w + "%";
  node.style.height = 100 * h + "%";
}

function frameView(item) {
  const frame = element("div", null, { id: "frame" });
  frame.append(element("img", null, { src: item.frame, alt: "the whole frame", draggable: "false" }));
  for (const found of item.boxes || []) {
    const node = element("div", null, { class: found.current ? "box current" : "box", title: found.face_id });
    placeBox(node, found.box);
    frame.append(node);
  }
  frame.addEventListener("mousedown", (event) => {
    if (!state.drawing) return;
    event.preventDefault();
    state.start = relativePoint(frame, event);
    const drawn = element("div", null, { class: "box drawn", id: "drawn-box" });
    placeBox(drawn, [state.start[0], state.start[1], 0, 0]);
    frame.append(drawn);
  });
  frame.addEventListener("mousemove", (event) => {
    const drawn = document.getElementById("drawn-box");
    if (state.drawing && state.start && drawn) placeBox(drawn, spanned(state.start, relativePoint(frame, event)));
  });
  frame.addEventListener("mouseup", (event) => {
    if (!state.drawing || !state.start) return;
    const box = spanned(state.start, relativePoint(frame, event));
    stopDrawing();
    decide("b", box);
  });
  return frame;
}

function relativePoint(frame, event) {
  const area = frame.querySelector("img").getBoundingClientRect();
  const clamp = (value) => Math.min(1, Math.max(0, value));
  return [clamp((event.clientX - area.left) / area.width), clamp((event.clientY - area.top) / area.height)];
}

function spanned(start, end) {
  return [Math.min(start[0], end[0]), Math.min(start[1], end[1]), Math.abs(end[0] - start[0]), Math.abs(end[1] - start[1])];
}

function startDrawing() {
  if (!state.item || !state.item.frame) return say("This item has no frame to draw on.", true);
  state.drawing = true;
  state.start = null;
  document.getElementById("frame").classList.add("drawing");
  say("Drag a box around the face on the frame; Esc cancels.", false);
}

function stopDrawing() {
  state.drawing = false;
  state.start = null;
  const frame = document.getElementById("frame");
  if (frame) frame.classList.remove("drawing");
  const drawn = document.getElementById("drawn-box");
  if (drawn) drawn.remove();
}

function updateRate() {
  const stats = window.reviewStats;
  if (stats.decisions) {
    document.getElementById("keys-per-item").textContent = (stats.keys / stats.decisions).toFixed(2);
  }
}

async function run(work) {
  if (state.busy) return;
  state.busy = true;
  try {
    await work();
  } catch (problem) {
    say(problem.message, true);
  } finally {
    state.busy = false;
  }
}

function decide(key, box) {
  return run(async () => {
    if (!state.item) return;
    const body = {
      key: state.item.key,
      action: key,
      seconds_spent: (performance.now() - state.shownAt) / 1000,
      keystrokes: Math.max(state.keys, 1),
      skip: state.skipped,
    };
    if (box) body.box = box;
    const answer = await post("/api/review", body);
    window.reviewStats.decisions += 1;
    window.reviewStats.keys += body.keystrokes;
    updateRate();
    const saved = answer.saved;
    say("Saved: " + saved.field + " " + saved.human_value + " (the model said " + saved.machine_value + ").", false);
    show(answer.item);
  });
}

// Seed 001's guided Grad-CAM of the face, computed by the server on demand (the first one takes a while).
function explain() {
  return run(async () => {
    if (!state.item || state.item.kind !== "face") return say("Only a face has a guided Grad-CAM.", true);
    const key = state.item.key;
    say("Computing the guided Grad-CAM…", false);
    const answer = await post("/api/explain", { key: key });
    if (!state.item || state.item.key !== key) return;
    document.getElementById("images").append(element("img", null, { src: answer.image, alt: "guided Grad-CAM" }));
    say("Guided Grad-CAM: the pixels that raise the score of the model's call.", false);
  });
}

function skip() {
  return run(async () => {
    if (!state.item) return;
    state.skipped.push(state.item.key);
    window.reviewStats.skips += 1;
    const answer = await post("/api/next", { skip: state.skipped });
    say("Skipped; it stays in the queue for later.", false);
    show(answer.item);
  });
}

function undo() {
  return run(async () => {
    const answer = await post("/api/undo", {});
    window.reviewStats.undos += 1;
    state.skipped = state.skipped.filter((key) => key !== answer.item.key);
    say("Undone: your last decision is cancelled (a new row records the undo).", false);
    show(answer.item);
  });
}

function retrain(kind) {
  // Not through run(): starting a retrain must not block reviewing, and a refusal (409) is shown as it is.
  post("/api/retrain", { kind: kind })
    .then((answer) => say(answer.watch, false))
    .catch((problem) => say(problem.message, true));
}

for (const button of document.querySelectorAll("button[data-retrain]")) {
  button.addEventListener("click", () => retrain(button.dataset.retrain));
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
  if (event.target instanceof HTMLInputElement || event.target instanceof HTMLTextAreaElement) return;
  if (event.key === "Escape" && state.drawing) {
    stopDrawing();
    return say("Drawing cancelled.", false);
  }
  const key = event.key.toLowerCase();
  if (key.length !== 1) return;
  state.keys += 1;
  if (key === "s") return skip();
  if (key === "u") return undo();
  if (key === "g" && state.item && state.item.kind === "face") return explain();
  if (key === "b" && state.item && state.item.actions.some((action) => action.key === "b")) return startDrawing();
  if (state.item && state.item.actions.some((action) => action.key === key)) return decide(key);
  say("The key " + key + " does nothing on this item.", true);
});

// A link from the report names its item (?item=kind:drop:id): show it first, then the queue.
run(async () => {
  const first = document.querySelector('meta[name="first-item"]').content;
  if (first) {
    try {
      return show((await post("/api/next", { skip: [], first: first })).item);
    } catch (problem) {
      say(problem.message + " Showing the queue instead.", true);
    }
  }
  show((await post("/api/next", { skip: [] })).item);
});
