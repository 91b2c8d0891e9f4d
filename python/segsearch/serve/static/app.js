// segsearch's page: the sketch tool in a browser. Plain ES2020, no framework, no build step.
// Everything goes through the HTTP API of docs/http-api.md. The sketch is a label array (0 = unspecified,
// class index + 1 elsewhere), the one source of truth: the canvas shows it, the search sends it as a PNG in
// the exact class colours.
"use strict";

const SKETCH = 256; // the sketch's size in label pixels, whatever the canvas's size on screen
const K = 24; // results asked for
const SEARCH_DELAY_MS = 150; // search this long after a stroke ends (or the caption words change)
const HISTORY_MAX = 60;
const BRUSH_MIN = 1;
const BRUSH_MAX = 64;
const OVER_PHOTO_ALPHA = 150; // the sketch's opacity over a query photo (of 255)
const QUERY_PHOTO_PX = 640; // the query photo shown under the canvas: the thumbnail of this size
const LONG_PRESS_MS = 450;
const TOKEN_KEY = "segsearch_token";
const NOTHING_TO_SEARCH = "Nothing to search for: draw a class, open a photo (Ctrl+O) or type caption words.";
const EXCLUDE_SHARE = 1; // a class left out: photos where it covers at least this percentage of the photo
const EMPHASIS = 4; // an emphasised class's weight
const EXPLAIN_TOP = 3; // classes shown of a result's distance
const FILTERS = ["after", "before", "folder", "camera"]; // the metadata filters, each an input data-field=NAME

const $ = (id) => document.getElementById(id);

// A new element: <tag class=className> with the given properties (``dataset``, ``style`` and ``attrs``,
// attributes, are merged in) and children.
function el(tag, className, props = {}, ...children) {
  const { dataset, style, attrs, ...rest } = props;
  const e = Object.assign(document.createElement(tag), rest);
  if (className) e.className = className;
  Object.assign(e.dataset, dataset || {});
  Object.assign(e.style, style || {});
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

const state = {
  health: null,
  classes: [], // {index, value, name, color, rgb: [r, g, b]}
  cls: 0, // the drawing class (index)
  tool: "brush", // brush | eraser | box | fill
  brush: 8, // radius in sketch pixels
  labels: new Uint8Array(SKETCH * SKETCH),
  undo: [],
  redo: [],
  query: null, // the query photo: {kind: "photo", id, src, name} or {kind: "file", file, src, name}
  photoImg: null, // its loaded <img>, drawn under the sketch
  results: [],
  // The refinements, in the undo history: each change makes new objects, so a snapshot keeps them as they were.
  refine: noRefinements(),
  target: null, // the result the keys L and U act on: {id, how: "pointer" | "focus"}, the latest pointed or focused
  seen: null, // the query photo's label map as the system sees it: {classes: [{index, share}]}, largest first
  token: sessionStorage.getItem(TOKEN_KEY),
  seq: 0, // the latest search; older answers are dropped
  inflight: null, // its AbortController
  timer: null,
  stroke: null, // the stroke being drawn: {value, last, start, end, before}
  pointer: null, // where the pointer is over the canvas (sketch pixels), for the brush outline
  frame: 0,
};

// ------------------------------------------------------------------------------------------ HTTP
class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (state.token) headers.set("Authorization", `Bearer ${state.token}`);
  let res;
  try {
    res = await fetch(path, { ...options, headers });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, `cannot reach the server (${e.message})`);
  }
  const body = await res.json().catch(() => null);
  if (res.status === 401) {
    askToken(state.token ? "The server refused this token." : "");
  }
  if (!res.ok) {
    const why = body && typeof body.error === "string" ? body.error : `${res.status} ${res.statusText}`;
    throw new ApiError(res.status, why);
  }
  return body;
}

// ------------------------------------------------------------------------------------------ token
function askToken(message) {
  $("token-error").textContent = message;
  $("token-dialog").hidden = false;
  $("token-input").focus();
  setStatus("This server needs its access token.", true);
}

function setToken(token) {
  state.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  // The cookie lets <img> URLs (thumbnails, label maps) load; a token a cookie cannot hold as it is goes
  // percent-encoded.
  const value = /^[A-Za-z0-9._~+\/=-]+$/.test(token) ? token : encodeURIComponent(token);
  document.cookie = `segsearch_token=${value}; SameSite=Strict; path=/`;
}

function bindTokenForm() {
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const token = $("token-input").value.trim();
    if (!token) return;
    setToken(token);
    $("token-dialog").hidden = true;
    connect();
  });
}

// ------------------------------------------------------------------------------------------ start
async function connect() {
  try {
    state.health = await api("/api/health");
    const classes = await api("/api/classes");
    state.classes = classes.map((c) => ({ ...c, rgb: hexToRgb(c.color) }));
  } catch (e) {
    if (e.status !== 401) setStatus(`Cannot start: ${e.message}`, true);
    return;
  }
  showIndexInfo();
  buildPalette();
  buildHelp();
  $("words-row").hidden = !state.health.captions;
  showFilters();
  showRefine();
  setStatus("Pick a class and draw where it is, open a photo (Ctrl+O), or click a result. F1: keys.");
  requestRender();
}

function showIndexInfo() {
  const h = state.health;
  const parts = [`${h.photos} photos`, `${h.classes} classes`, `${h.size}×${h.size} maps`];
  if (h.captions) parts.push("captions");
  $("index-info").textContent = parts.join(" · ");
}

function hexToRgb(hex) {
  const v = parseInt(hex.replace("#", ""), 16);
  return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
}

// ------------------------------------------------------------------------------------------ status
function setStatus(text, error = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", error);
}

// ------------------------------------------------------------------------------------------ palette
function buildPalette() {
  $("class-list").replaceChildren(...state.classes.map(classItem));
  const others = state.classes.length > 1 && state.classes[0].name.toLowerCase() === "others";
  selectClass(others ? 1 : 0);
  filterPalette();
}

function classItem(c) {
  const li = el(
    "li",
    "class",
    { title: `${c.name}: class ${c.index}`, dataset: { index: c.index }, attrs: { role: "option" } },
    swatchOf(c),
    el("span", "name", { textContent: c.name }),
    el("span", "num", { textContent: c.index }),
  );
  const leaveOut = el("button", "leave-out needs-exclude", {
    type: "button",
    textContent: "⊘",
    title: `Leave out photos with ${c.name} (also a right click)`,
    attrs: { "aria-label": `Leave out photos with ${c.name}` },
  });
  leaveOut.addEventListener("click", (e) => {
    e.stopPropagation();
    excludeClass(c);
  });
  li.append(leaveOut);
  li.addEventListener("click", () => selectClass(c.index));
  li.addEventListener("contextmenu", (e) => {
    e.preventDefault();
    excludeClass(c);
  });
  return li;
}

function selectClass(index) {
  const c = state.classes[index];
  if (!c) return;
  state.cls = index;
  for (const li of $("class-list").children) {
    li.setAttribute("aria-selected", String(Number(li.dataset.index) === index));
  }
  const current = $("current-class");
  current.replaceChildren(swatchOf(c), document.createTextNode(` drawing: ${c.name}`));
  if (state.tool === "eraser") setTool("brush");
}

function swatchOf(c) {
  return el("span", "swatch", { style: { background: c.color } });
}

function filterPalette() {
  const text = $("class-filter").value.trim().toLowerCase();
  for (const li of $("class-list").children) {
    const c = state.classes[Number(li.dataset.index)];
    li.hidden = text !== "" && !c.name.toLowerCase().includes(text) && String(c.index) !== text;
  }
}

// The class the filter text picks: named exactly so, else the first whose name starts with it, else the
// first containing it (as the Tk tool's palette).
function bestMatch(text) {
  const t = text.trim().toLowerCase();
  if (!t) return null;
  const names = state.classes.map((c) => c.name.toLowerCase());
  for (const test of [(n) => n === t, (n) => n.startsWith(t), (n) => n.includes(t)]) {
    const i = names.findIndex(test);
    if (i >= 0) return i;
  }
  return /^\d+$/.test(t) && Number(t) < state.classes.length ? Number(t) : null;
}

function pickFiltered() {
  const text = $("class-filter").value;
  const i = bestMatch(text);
  if (i === null) {
    setStatus(`No class name contains "${text.trim()}".`, true);
    return;
  }
  selectClass(i);
  $("class-filter").select();
}

// ------------------------------------------------------------------------------------------ tools
function setTool(tool) {
  state.tool = tool;
  for (const b of document.querySelectorAll(".tool")) {
    b.setAttribute("aria-checked", String(b.dataset.tool === tool));
  }
  $("sketch").dataset.tool = tool;
  requestRender();
}

function setBrush(radius) {
  state.brush = Math.max(BRUSH_MIN, Math.min(BRUSH_MAX, Math.round(radius)));
  $("brush-size").value = state.brush;
  $("brush-size-value").textContent = state.brush;
  requestRender();
}

// [ and ] step through these radii, so the whole range is a few presses away
const BRUSH_STEPS = [1, 2, 3, 4, 6, 8, 11, 16, 22, 32, 45, 64];

function changeBrush(step) {
  const larger = BRUSH_STEPS.find((r) => r > state.brush) ?? BRUSH_MAX;
  const smaller = [...BRUSH_STEPS].reverse().find((r) => r < state.brush) ?? BRUSH_MIN;
  setBrush(step > 0 ? larger : smaller);
}

// ------------------------------------------------------------------------------------------ the label array
function paintSegment(a, b, radius, value) {
  const r = Math.max(radius, 0.5);
  const x0 = Math.max(Math.floor(Math.min(a.x, b.x) - r), 0);
  const x1 = Math.min(Math.ceil(Math.max(a.x, b.x) + r), SKETCH - 1);
  const y0 = Math.max(Math.floor(Math.min(a.y, b.y) - r), 0);
  const y1 = Math.min(Math.ceil(Math.max(a.y, b.y) + r), SKETCH - 1);
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const len2 = dx * dx + dy * dy;
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const t = len2 === 0 ? 0 : Math.max(0, Math.min(1, ((x - a.x) * dx + (y - a.y) * dy) / len2));
      const ex = a.x + t * dx - x;
      const ey = a.y + t * dy - y;
      if (ex * ex + ey * ey <= r * r) state.labels[y * SKETCH + x] = value;
    }
  }
}

function fillBox(a, b, value) {
  const x0 = clampPixel(Math.min(a.x, b.x));
  const x1 = clampPixel(Math.max(a.x, b.x));
  const y0 = clampPixel(Math.min(a.y, b.y));
  const y1 = clampPixel(Math.max(a.y, b.y));
  for (let y = y0; y <= y1; y++) state.labels.fill(value, y * SKETCH + x0, y * SKETCH + x1 + 1);
}

function floodFill(p, value) {
  const start = clampPixel(p.y) * SKETCH + clampPixel(p.x);
  const old = state.labels[start];
  if (old === value) return;
  const stack = [start];
  while (stack.length) {
    const i = stack.pop();
    if (state.labels[i] !== old) continue;
    state.labels[i] = value;
    const x = i % SKETCH;
    if (x > 0) stack.push(i - 1);
    if (x < SKETCH - 1) stack.push(i + 1);
    if (i >= SKETCH) stack.push(i - SKETCH);
    if (i < SKETCH * (SKETCH - 1)) stack.push(i + SKETCH);
  }
}

function clampPixel(v) {
  return Math.max(0, Math.min(SKETCH - 1, Math.round(v)));
}

function hasSketch() {
  return state.labels.some((v) => v !== 0);
}

function classesDrawn() {
  const seen = new Set(state.labels);
  seen.delete(0);
  return [...seen].sort((a, b) => a - b).map((v) => state.classes[v - 1].name);
}

// The label array as an image of SKETCH x SKETCH pixels: each class in its exact colour with ``alpha``,
// unspecified pixels transparent (no anti-aliasing anywhere).
function labelCanvas(alpha) {
  const c = document.createElement("canvas");
  c.width = c.height = SKETCH;
  const ctx = c.getContext("2d");
  const img = ctx.createImageData(SKETCH, SKETCH);
  const px = img.data;
  for (let i = 0; i < state.labels.length; i++) {
    const v = state.labels[i];
    if (v === 0) continue;
    const [r, g, b] = state.classes[v - 1].rgb;
    px[4 * i] = r;
    px[4 * i + 1] = g;
    px[4 * i + 2] = b;
    px[4 * i + 3] = alpha;
  }
  ctx.putImageData(img, 0, 0);
  return c;
}

// What the search sends: a PNG in the class colours, transparent where nothing is drawn.
function sketchDataURL() {
  return labelCanvas(255).toDataURL("image/png");
}

// ------------------------------------------------------------------------------------------ history
function snapshot() {
  return { labels: state.labels.slice(), query: state.query, words: $("words").value, refine: state.refine };
}

function pushHistory(entry = snapshot()) {
  state.undo.push(entry);
  if (state.undo.length > HISTORY_MAX) state.undo.shift();
  state.redo = [];
}

function restore(entry) {
  state.labels = entry.labels;
  $("words").value = entry.words;
  if (entry.query !== state.query) showQuery(entry.query);
  state.refine = entry.refine;
  showRefine();
  requestRender();
  scheduleSearch(0);
}

function undo() {
  if (!state.undo.length) return setStatus("Nothing to undo.");
  state.redo.push(snapshot());
  restore(state.undo.pop());
}

function redo() {
  if (!state.redo.length) return setStatus("Nothing to redo.");
  state.undo.push(snapshot());
  restore(state.redo.pop());
}

function clearSketch() {
  if (!hasSketch()) return;
  pushHistory();
  state.labels = new Uint8Array(SKETCH * SKETCH);
  requestRender();
  scheduleSearch(0);
}

// ------------------------------------------------------------------------------------------ the canvas
function fitCanvas() {
  const canvas = $("sketch");
  const side = Math.max(1, Math.round(canvas.getBoundingClientRect().width * (window.devicePixelRatio || 1)));
  if (canvas.width !== side || canvas.height !== side) {
    canvas.width = canvas.height = side;
    render();
  }
}

// Where the sketch lies on the canvas (canvas pixels): over the query photo, its aspect ratio kept (the
// network stretches a photo to a square and the sketch is stretched the same way), else the whole canvas.
function sketchRect() {
  const side = $("sketch").width;
  const img = state.photoImg;
  if (!img || !img.naturalWidth) return { x: 0, y: 0, w: side, h: side };
  const scale = side / Math.max(img.naturalWidth, img.naturalHeight);
  const w = img.naturalWidth * scale;
  const h = img.naturalHeight * scale;
  return { x: (side - w) / 2, y: (side - h) / 2, w, h };
}

// A pointer event's position in sketch pixels (pixel centres at whole numbers; may lie outside).
function toSketch(e) {
  const canvas = $("sketch");
  const box = canvas.getBoundingClientRect();
  const r = sketchRect();
  const cx = ((e.clientX - box.left) * canvas.width) / box.width;
  const cy = ((e.clientY - box.top) * canvas.height) / box.height;
  return { x: ((cx - r.x) / r.w) * SKETCH - 0.5, y: ((cy - r.y) / r.h) * SKETCH - 0.5 };
}

function requestRender() {
  if (!state.frame) state.frame = requestAnimationFrame(render);
}

function render() {
  state.frame = 0;
  const canvas = $("sketch");
  const ctx = canvas.getContext("2d");
  const r = sketchRect();
  ctx.fillStyle = state.photoImg ? "#777" : "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (state.photoImg) {
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(state.photoImg, r.x, r.y, r.w, r.h);
  }
  if (state.classes.length) {
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(labelCanvas(state.photoImg ? OVER_PHOTO_ALPHA : 255), r.x, r.y, r.w, r.h);
  }
  drawBoxPreview(ctx, r);
  drawBrushOutline(ctx, r);
}

function drawBoxPreview(ctx, r) {
  const s = state.stroke;
  if (!s || state.tool !== "box" || !s.end) return;
  const k = r.w / SKETCH;
  const x = r.x + (Math.min(s.start.x, s.end.x) + 0.5) * k;
  const y = r.y + (Math.min(s.start.y, s.end.y) + 0.5) * (r.h / SKETCH);
  const w = Math.abs(s.end.x - s.start.x) * k;
  const h = Math.abs(s.end.y - s.start.y) * (r.h / SKETCH);
  const c = s.value ? state.classes[s.value - 1].color : "#ffffff";
  ctx.fillStyle = c + "99";
  ctx.fillRect(x, y, w, h);
  ctx.strokeStyle = "#000";
  ctx.lineWidth = Math.max(1, window.devicePixelRatio || 1);
  ctx.strokeRect(x, y, w, h);
}

function drawBrushOutline(ctx, r) {
  const p = state.pointer;
  if (!p || (state.tool !== "brush" && state.tool !== "eraser")) return;
  ctx.beginPath();
  ctx.ellipse(
    r.x + ((p.x + 0.5) * r.w) / SKETCH,
    r.y + ((p.y + 0.5) * r.h) / SKETCH,
    (state.brush * r.w) / SKETCH,
    (state.brush * r.h) / SKETCH,
    0,
    0,
    2 * Math.PI,
  );
  ctx.strokeStyle = "rgba(0,0,0,0.7)";
  ctx.lineWidth = Math.max(1, window.devicePixelRatio || 1);
  ctx.stroke();
}

function strokeValue(e) {
  return state.tool === "eraser" || e.button === 2 ? 0 : state.cls + 1;
}

function pointerDown(e) {
  if (!state.classes.length || (e.button !== 0 && e.button !== 2)) return;
  e.preventDefault();
  clearTimeout(state.timer); // the search waits for the end of this stroke too
  $("sketch").setPointerCapture(e.pointerId);
  const p = toSketch(e);
  const value = strokeValue(e);
  state.stroke = { value, last: p, start: p, end: null, before: snapshot() };
  if (state.tool === "fill" && e.button === 0) {
    floodFill(p, value);
    endStroke();
  } else if (state.tool !== "box") {
    paintSegment(p, p, state.brush, value);
  }
  requestRender();
}

function pointerMove(e) {
  const p = toSketch(e);
  state.pointer = e.pointerType === "mouse" ? p : null;
  const s = state.stroke;
  if (s && state.tool === "box") {
    s.end = p;
  } else if (s) {
    paintSegment(s.last, p, state.brush, s.value);
    s.last = p;
  }
  requestRender();
}

function pointerUp(e) {
  const s = state.stroke;
  if (!s) return;
  if (state.tool === "box" && s.end && e.type !== "pointercancel") fillBox(s.start, s.end, s.value);
  endStroke();
}

// One undo step per stroke, and a search after it (unless it changed nothing).
function endStroke() {
  const s = state.stroke;
  state.stroke = null;
  const changed = s.before.labels.some((v, i) => v !== state.labels[i]);
  if (changed) {
    pushHistory(s.before);
    scheduleSearch();
  }
  requestRender();
}

function bindCanvas() {
  const canvas = $("sketch");
  canvas.addEventListener("pointerdown", pointerDown);
  canvas.addEventListener("pointermove", pointerMove);
  canvas.addEventListener("pointerup", pointerUp);
  canvas.addEventListener("pointercancel", pointerUp);
  canvas.addEventListener("pointerleave", () => {
    state.pointer = null;
    requestRender();
  });
  canvas.addEventListener("contextmenu", (e) => e.preventDefault());
  new ResizeObserver(fitCanvas).observe(canvas);
  bindDrop($("canvas-wrap"));
}

// ------------------------------------------------------------------------------------------ query photo
function bindDrop(target) {
  const hint = (on) => target.classList.toggle("dropping", on);
  target.addEventListener("dragover", (e) => {
    if (![...e.dataTransfer.types].includes("Files")) return;
    e.preventDefault();
    hint(true);
  });
  target.addEventListener("dragleave", () => hint(false));
  target.addEventListener("drop", (e) => {
    e.preventDefault();
    hint(false);
    const file = e.dataTransfer.files[0];
    if (file) openFile(file);
  });
}

// A new query from a photo file (picked or dropped): the strokes and words are cleared, in one undo step.
function openFile(file) {
  if (file.type && !file.type.startsWith("image/")) {
    setStatus(`Cannot search by ${file.name}: it is not an image (${file.type}).`, true);
    return;
  }
  pushHistory();
  state.labels = new Uint8Array(SKETCH * SKETCH);
  $("words").value = "";
  showQuery({ kind: "file", file, src: URL.createObjectURL(file), name: file.name });
  scheduleSearch(0);
}

// Result ``r`` becomes the query photo; the strokes stay, drawn over it (the paper's interactive loop).
function useResult(r) {
  if (state.query && state.query.kind === "photo" && state.query.id === r.id) return;
  pushHistory();
  showQuery({ kind: "photo", id: r.id, src: sizedThumbnail(r.thumbnail, QUERY_PHOTO_PX), name: r.id });
  scheduleSearch(0);
  $("sketch").scrollIntoView({ block: "nearest", behavior: "smooth" });
}

function sizedThumbnail(url, size) {
  const u = new URL(url, window.location.href);
  u.searchParams.set("size", String(size));
  return u.pathname + u.search;
}

function removePhoto() {
  if (!state.query) return;
  pushHistory();
  showQuery(null);
  scheduleSearch(0);
}

function showQuery(query) {
  state.query = query;
  state.photoImg = null;
  $("seen").hidden = true;
  $("query-name").textContent = query ? `Query: ${query.name} + sketch` : "Query: sketch only";
  $("query-name").title = query ? query.name : "";
  $("remove-photo").hidden = !query;
  markQueryResult();
  requestRender();
  if (!query) return;
  const img = new Image();
  img.onload = () => {
    if (state.query !== query) return;
    state.photoImg = img;
    requestRender();
  };
  img.onerror = () => {
    if (state.query === query) setStatus(`Cannot show the photo ${query.name}.`, true);
  };
  img.src = query.src;
}

function showSeen(dataUrl) {
  const seen = $("seen");
  seen.hidden = !(dataUrl && state.query);
  if (seen.hidden) return;
  const img = $("query-labels");
  if (img.getAttribute("src") === dataUrl) return;
  state.seen = null;
  $("seen-classes").replaceChildren();
  img.onload = () => {
    if (img.getAttribute("src") !== dataUrl) return;
    state.seen = readSeen(img);
    showSeenClasses();
  };
  img.src = dataUrl;
}

// The classes of a label map image (the server's, in the exact class colours): per pixel (row-major) its class
// index (-1: a colour of no class), and the classes by share of the map, largest first.
function readSeen(img) {
  const c = document.createElement("canvas");
  c.width = img.naturalWidth;
  c.height = img.naturalHeight;
  const ctx = c.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const px = ctx.getImageData(0, 0, c.width, c.height).data;
  const byColour = new Map(state.classes.map((k) => [k.rgb.join(","), k.index]));
  const pixels = new Int16Array(c.width * c.height);
  const counts = new Map();
  for (let i = 0; i < pixels.length; i++) {
    const k = byColour.get(`${px[4 * i]},${px[4 * i + 1]},${px[4 * i + 2]}`);
    pixels[i] = k === undefined ? -1 : k;
    if (k !== undefined) counts.set(k, (counts.get(k) || 0) + 1);
  }
  const classes = [...counts].map(([index, n]) => ({ index, share: n / pixels.length }));
  classes.sort((a, b) => b.share - a.share || a.index - b.index);
  return { width: c.width, height: c.height, pixels, classes };
}

// Under the query photo's label map, its classes as buttons (the map's pixels are small on a phone): one
// emphasises its class.
function showSeenClasses() {
  const buttons = (state.seen ? state.seen.classes : []).map(({ index, share }) => {
    const c = state.classes[index];
    const on = c.name in state.refine.weights;
    const b = el(
      "button",
      "seen-class",
      {
        type: "button",
        title: on ? `${c.name} is emphasised` : `Emphasise ${c.name}: photos with it where the query has it`,
        dataset: { name: c.name },
        attrs: { "aria-pressed": String(on) },
      },
      swatchOf(c),
      el("span", "", { textContent: `${c.name} ${percent(share)}` }),
    );
    b.addEventListener("click", () => emphasise(c));
    return b;
  });
  $("seen-classes").replaceChildren(...buttons);
}

// A click on the query photo's label map emphasises the class under it.
function clickSeen(e) {
  const seen = state.seen;
  if (!seen || !takes("weights")) return;
  const box = e.currentTarget.getBoundingClientRect();
  const x = Math.min(seen.width - 1, Math.max(0, Math.floor(((e.clientX - box.left) / box.width) * seen.width)));
  const y = Math.min(seen.height - 1, Math.max(0, Math.floor(((e.clientY - box.top) / box.height) * seen.height)));
  const index = seen.pixels[y * seen.width + x];
  if (index >= 0) emphasise(state.classes[index]);
}

// ------------------------------------------------------------------------------------------ search
function scheduleSearch(delay = SEARCH_DELAY_MS) {
  clearTimeout(state.timer);
  state.timer = setTimeout(search, delay);
}

function buildQuery() {
  const q = { k: K };
  if (hasSketch()) q.sketch = sketchDataURL();
  if (state.query && state.query.kind === "photo") q.photo = state.query.id;
  const text = $("words").value.trim();
  if (text && state.health && state.health.captions) q.text = text;
  Object.assign(q, filterFields());
  const r = state.refine;
  const exclude = Object.entries(r.exclude);
  if (exclude.length && takes("exclude")) {
    q.exclude = Object.fromEntries(exclude.map(([name, pct]) => [name, pct / 100]));
  }
  if (Object.keys(r.weights).length && takes("weights")) q.weights = { ...r.weights };
  if (r.like.length && takes("like")) q.like = [...r.like];
  if (r.unlike.length && takes("unlike")) q.unlike = [...r.unlike];
  if (takes("explain")) q.explain = true;
  const file = state.query && state.query.kind === "file";
  return q.sketch || q.photo || q.text || file || q.like ? q : null;
}

function searchRequest(q, signal) {
  if (state.query && state.query.kind === "file") {
    const form = new FormData();
    form.append("image", state.query.file, state.query.name);
    form.append("query", JSON.stringify(q));
    return { method: "POST", body: form, signal };
  }
  return { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(q), signal };
}

async function search() {
  clearTimeout(state.timer);
  if (!state.health) return;
  const seq = ++state.seq;
  if (state.inflight) state.inflight.abort();
  const q = buildQuery();
  if (!q) {
    state.inflight = null;
    showResults([]);
    showSeen(null);
    setStatus(NOTHING_TO_SEARCH);
    return;
  }
  const ctl = new AbortController();
  state.inflight = ctl;
  document.body.classList.add("busy");
  try {
    const answer = await api("/api/search", searchRequest(q, ctl.signal));
    if (seq === state.seq) showAnswer(answer);
  } catch (e) {
    if (e.name !== "AbortError" && seq === state.seq) setStatus(e.message, true);
  } finally {
    if (seq === state.seq) document.body.classList.remove("busy");
  }
}

function showAnswer(answer) {
  showResults(answer.results);
  showSeen(answer.query_labels);
  let msg = `${answer.results.length} results of ${answer.photos} photos, query ${answer.took_ms.toFixed(1)} ms`;
  if (answer.segment_ms !== null && answer.segment_ms !== undefined) {
    msg += ` (photo segmented in ${answer.segment_ms.toFixed(answer.segment_ms < 10 ? 1 : 0)} ms)`;
  }
  const drawn = state.classes.length ? classesDrawn() : [];
  if (drawn.length) msg += ` — drawn: ${drawn.join(", ")}`;
  setStatus(msg);
}

// ------------------------------------------------------------------------------------------ results
function showResults(results) {
  // the focus stays on the same control of the same photo when it is in the new grid too (keys L and U)
  const a = document.activeElement;
  const focused = a && a.closest && a.closest("#results .result");
  const where = focused && [...focused.querySelectorAll("button, a")].indexOf(a);
  state.results = results;
  $("results").replaceChildren(...results.map(resultItem));
  markQueryResult();
  markLikes();
  if (focused) {
    const li = resultElement(focused.dataset.id);
    if (li) li.querySelectorAll("button, a")[where].focus({ preventScroll: true });
  }
}

function resultElement(id) {
  return [...$("results").children].find((li) => li.dataset.id === String(id)) || null;
}

function markQueryResult() {
  const id = state.query && state.query.kind === "photo" ? String(state.query.id) : null;
  for (const li of $("results").children) li.classList.toggle("is-query", li.dataset.id === id);
}

function markLikes() {
  const likes = new Set(state.refine.like.map(String));
  const unlikes = new Set(state.refine.unlike.map(String));
  for (const li of $("results").children) {
    const liked = likes.has(li.dataset.id);
    const unliked = unlikes.has(li.dataset.id);
    li.classList.toggle("liked", liked);
    li.classList.toggle("unliked", unliked);
    li.querySelector(".like").setAttribute("aria-pressed", String(liked));
    li.querySelector(".unlike").setAttribute("aria-pressed", String(unliked));
  }
}

function resultItem(r) {
  const li = el("li", "result", { dataset: { id: r.id } });
  const why = explainText(r);
  const pick = el(
    "button",
    "pick",
    {
      type: "button",
      title: why ? `${r.id}\n${why}` : r.id,
      attrs: { "aria-label": `Result ${r.rank}: ${r.id}${why ? ` (${why})` : ""}. Make it the query photo` },
    },
    resultPicture(r),
  );
  pick.addEventListener("click", (e) => {
    if (li.dataset.longPress === "1") {
      delete li.dataset.longPress;
      e.preventDefault();
      return;
    }
    useResult(r);
  });
  bindLongPress(pick, li);
  bindTarget(li);
  li.append(pick, resultMeta(r));
  return li;
}

// The thumbnail, and over it the label map (shown on hover, a long press or the toggle), in a box of the
// thumbnail's aspect ratio, so the map covers the photo exactly.
function resultPicture(r) {
  const pic = el("span", "pic");
  const thumb = el("img", "thumb", { alt: "", decoding: "async" });
  thumb.onload = () => pic.style.setProperty("--ar", `${thumb.naturalWidth} / ${thumb.naturalHeight}`);
  thumb.onerror = () => pic.classList.add("missing");
  thumb.src = r.thumbnail;
  pic.append(thumb, el("img", "labels", { alt: "", loading: "lazy", src: r.labels }));
  const parts = explainParts(r);
  if (parts.length) {
    const rows = parts.map(({ c, share }) => {
      const text = el("span", "", { textContent: `${c.name} ${percent(share)}` });
      return el("span", "part", { dataset: { name: c.name } }, swatchOf(c), text);
    });
    pic.append(el("span", "explain", {}, ...rows));
  }
  pic.append(el("span", "mark", { attrs: { "aria-hidden": "true" } }));
  return pic;
}

// The classes making up most of a result's distance (the server's explain, largest first): {c, share} with share
// the part's fraction of the distance.
function explainParts(r) {
  if (!Array.isArray(r.explain) || !r.distance) return [];
  return r.explain
    .slice(0, EXPLAIN_TOP)
    .filter((p) => state.classes[p.class])
    .map((p) => ({ c: state.classes[p.class], share: p.part / r.distance }));
}

function explainText(r) {
  const parts = explainParts(r);
  return parts.length ? "distance from " + parts.map(({ c, share }) => `${c.name} ${percent(share)}`).join(", ") : "";
}

function percent(x) {
  const v = x * 100;
  if (v > 0 && v < 1) return "<1%";
  return `${Math.round(v)}%`;
}

function resultMeta(r) {
  const toggle = el("button", "toggle-labels", {
    type: "button",
    textContent: "◐",
    title: "Show the label map (what the index holds)",
    attrs: { "aria-pressed": "false", "aria-label": `Show the label map of ${r.id}` },
  });
  toggle.addEventListener("click", () => {
    const on = toggle.closest(".result").classList.toggle("show-labels");
    toggle.setAttribute("aria-pressed", String(on));
  });
  const open = el("a", "open", {
    href: r.photo,
    target: "_blank",
    rel: "noopener",
    textContent: "open",
    attrs: { "aria-label": `Open the photo ${r.id}` },
  });
  return el(
    "div",
    "meta",
    {},
    el("span", "rank", { textContent: `#${r.rank}` }),
    el("span", "distance", { textContent: resultScore(r) }),
    likeButton(r, "like"),
    likeButton(r, "unlike"),
    toggle,
    open,
    el("span", "name", { textContent: r.id, title: r.id }),
  );
}

// The + (``kind`` "like") or − ("unlike") button of a result: pressed while it is liked (unliked).
function likeButton(r, kind) {
  const more = kind === "like";
  const b = el("button", `${kind} needs-${kind}`, {
    type: "button",
    textContent: more ? "+" : "−",
    title: more ? "More like this (L)" : "Fewer like this (U)",
    attrs: { "aria-pressed": "false", "aria-label": `${more ? "More" : "Fewer"} like ${r.id}` },
  });
  b.addEventListener("click", () => likeResult(r.id, kind));
  return b;
}

function resultScore(r) {
  const parts = [];
  if (r.distance !== null && r.distance !== undefined) parts.push(`d ${formatNumber(r.distance)}`);
  if (r.text_score) parts.push(`${r.text_score} word${r.text_score === 1 ? "" : "s"}`);
  if (r.bm25 !== null && r.bm25 !== undefined) parts.push(`bm25 ${formatNumber(r.bm25)}`);
  return parts.join(" · ");
}

function formatNumber(v) {
  return Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3);
}

// On a touch screen a long press shows the label map while the finger stays (and does not pick the result).
function bindLongPress(el, li) {
  let timer = null;
  const stop = () => {
    clearTimeout(timer);
    li.classList.remove("pressing");
  };
  el.addEventListener("pointerdown", (e) => {
    if (e.pointerType === "mouse") return;
    timer = setTimeout(() => {
      li.classList.add("pressing");
      li.dataset.longPress = "1";
    }, LONG_PRESS_MS);
  });
  for (const type of ["pointerup", "pointercancel", "pointerleave"]) el.addEventListener(type, stop);
  el.addEventListener("contextmenu", (e) => e.preventDefault());
}

// ------------------------------------------------------------------------------------------ refinements
// Classes emphasised (weights) and left out (exclude), photos liked and unliked: chips under the query, each
// removable, each change one undo step. The metadata filters are form fields, outside the undo history.
function noRefinements() {
  return { exclude: {}, weights: {}, like: [], unlike: [] }; // name -> percent; name -> weight; result ids
}

// Whether the server's search takes the field ``name`` (GET /api/health lists them): the page shows and sends
// only what it takes.
function takes(name) {
  return !!(state.health && Array.isArray(state.health.fields) && state.health.fields.includes(name));
}

// One undo step: ``change`` edits a copy of the refinements (the history keeps the old ones as they were).
function changeRefine(change) {
  const r = state.refine;
  const next = { exclude: { ...r.exclude }, weights: { ...r.weights }, like: [...r.like], unlike: [...r.unlike] };
  change(next);
  if (JSON.stringify(next) === JSON.stringify(r)) return;
  pushHistory();
  state.refine = next;
  showRefine();
  scheduleSearch(0);
}

function excludeClass(c) {
  if (!takes("exclude")) return;
  if (c.name in state.refine.exclude) return setStatus(`${c.name} is left out already: its share is in its chip.`);
  changeRefine((r) => {
    r.exclude[c.name] = EXCLUDE_SHARE;
    delete r.weights[c.name];
  });
}

function emphasise(c) {
  if (!takes("weights")) return;
  if (c.name in state.refine.weights) return setStatus(`${c.name} is emphasised already: its weight is in its chip.`);
  changeRefine((r) => {
    r.weights[c.name] = EMPHASIS;
    delete r.exclude[c.name];
  });
}

// Like (``kind`` "like") or unlike a result; the same again takes it back.
function likeResult(id, kind) {
  if (!takes(kind)) return;
  changeRefine((r) => {
    const on = r[kind].includes(id);
    r.like = r.like.filter((x) => x !== id);
    r.unlike = r.unlike.filter((x) => x !== id);
    if (!on) r[kind].push(id);
  });
}

// The keys L and U act on the result last pointed at or focused (while the pointer or the focus is on it).
function likeFocused(kind) {
  const t = state.target;
  const r = t && state.results.find((x) => String(x.id) === t.id);
  if (!r) return setStatus("Point at a result (or Tab to it) to say more or fewer like it.");
  likeResult(r.id, kind);
}

function bindTarget(li) {
  const set = (how) => () => (state.target = { id: li.dataset.id, how });
  const unset = (how) => () => {
    const t = state.target;
    if (t && t.id === li.dataset.id && t.how === how) state.target = null;
  };
  li.addEventListener("pointerenter", set("pointer"));
  li.addEventListener("pointerleave", unset("pointer"));
  li.addEventListener("focusin", set("focus"));
  li.addEventListener("focusout", unset("focus"));
}

function showRefine() {
  const r = state.refine;
  const chips = [
    ...Object.entries(r.weights).map(([name, w]) => classChip("weights", name, w)),
    ...Object.entries(r.exclude).map(([name, pct]) => classChip("exclude", name, pct)),
    ...r.like.map((id) => photoChip("like", id)),
    ...r.unlike.map((id) => photoChip("unlike", id)),
  ];
  $("chips").replaceChildren(...chips);
  $("chips").hidden = !chips.length;
  for (const name of ["exclude", "weights", "like", "unlike"]) {
    document.body.classList.toggle(`takes-${name}`, takes(name));
  }
  for (const li of $("class-list").children) {
    li.classList.toggle("left-out", state.classes[Number(li.dataset.index)].name in r.exclude);
  }
  markLikes();
  showSeenClasses();
}

// The chip of a class emphasised (``kind`` "weights": its weight) or left out ("exclude": its share in percent).
function classChip(kind, name, value) {
  const c = state.classes.find((k) => k.name === name);
  const emph = kind === "weights";
  const input = el("input", "", {
    type: "number",
    value: String(value),
    min: "0.5",
    max: "100",
    step: "0.5",
    title: emph ? `How much ${name} counts` : `Leave out photos where ${name} covers at least this share`,
    attrs: { "aria-label": emph ? `Weight of ${name}` : `Share of the photo, in percent, of ${name} to leave out` },
  });
  input.addEventListener("change", () => {
    const v = Number(input.value);
    if (!(v >= Number(input.min) && v <= Number(input.max))) {
      setStatus(`Give a number from ${input.min} to ${input.max}.`, true);
      input.value = String(value);
      return;
    }
    changeRefine((r) => {
      r[kind][name] = v;
    });
  });
  const remove = el("button", "remove", {
    type: "button",
    textContent: "×",
    title: emph ? `Stop emphasising ${name}` : `Stop leaving out ${name}`,
    attrs: { "aria-label": emph ? `Stop emphasising ${name}` : `Stop leaving out ${name}` },
  });
  remove.addEventListener("click", () =>
    changeRefine((r) => {
      delete r[kind][name];
    }),
  );
  const label = el("label", "", {}, el("span", "sign", { textContent: emph ? "↑" : "⊘" }));
  if (c) label.append(swatchOf(c));
  label.append(el("span", "name", { textContent: name }), el("span", "", { textContent: emph ? "weight" : "≥" }));
  label.append(input);
  if (!emph) label.append("%");
  return el("span", `chip ${kind}`, { dataset: { kind, name } }, label, remove);
}

// The chip of a photo liked or unliked.
function photoChip(kind, id) {
  const more = kind === "like";
  const remove = el("button", "remove", {
    type: "button",
    textContent: "×",
    title: "Take it back",
    attrs: { "aria-label": `${more ? "No more" : "No fewer"} like ${id}` },
  });
  remove.addEventListener("click", () =>
    changeRefine((r) => {
      r[kind] = r[kind].filter((x) => x !== id);
    }),
  );
  const thumb = el("img", "", { alt: "", src: thumbnailUrl(id, 64), decoding: "async" });
  return el(
    "span",
    `chip ${kind}`,
    { dataset: { kind, id }, title: `${more ? "More" : "Fewer"} like ${id}` },
    el("span", "sign", { textContent: more ? "+" : "−" }),
    thumb,
    el("span", "name", { textContent: id }),
    remove,
  );
}

function thumbnailUrl(id, size) {
  return `/api/thumbnail/${String(id).split("/").map(encodeURIComponent).join("/")}?size=${size}`;
}

// The metadata filters: disabled, with a note, on an index without metadata.
function showFilters() {
  const on = !!state.health.metadata;
  $("filters").disabled = !on;
  $("filters-note").hidden = on;
  countFilters();
}

function filterFields() {
  const q = {};
  if (!state.health || !state.health.metadata) return q;
  for (const name of FILTERS) {
    const v = $(`filter-${name}`).value.trim();
    if (v && takes(name)) q[name] = v;
  }
  return q;
}

function countFilters() {
  const n = Object.keys(filterFields()).length;
  $("refine-count").textContent = n ? `(${n})` : "";
}

function bindFilters() {
  for (const name of FILTERS) {
    const input = $(`filter-${name}`);
    if (input.type === "date") {
      input.addEventListener("change", () => {
        countFilters();
        scheduleSearch(0);
      });
    } else {
      input.addEventListener("input", () => {
        countFilters();
        scheduleSearch(400);
      });
      input.addEventListener("keydown", (e) => {
        if (e.key !== "Enter") return;
        e.preventDefault();
        search();
      });
    }
  }
  $("query-labels").addEventListener("click", clickSeen);
}

// ------------------------------------------------------------------------------------------ keys
const ANYWHERE = "anywhere";
const NOT_TYPING = "not while typing in a text box";

const ctrl = (e) => e.ctrlKey || e.metaKey;
const plain = (e) => !e.ctrlKey && !e.metaKey && !e.altKey;
const keyIs = (e, ...keys) => keys.includes(e.key.length === 1 ? e.key.toLowerCase() : e.key);

// One table binds the keys and is what the help lists (as the Tk tool's shortcuts.SHORTCUTS).
const SHORTCUTS = [
  { keys: "Ctrl+Z", action: "undo (a stroke, box, fill, clear, query photo, like or class chip)", where: NOT_TYPING,
    match: (e) => ctrl(e) && !e.shiftKey && keyIs(e, "z"), run: undo },
  { keys: "Ctrl+Y", action: "redo (also Ctrl+Shift+Z)", where: NOT_TYPING,
    match: (e) => ctrl(e) && (keyIs(e, "y") || (e.shiftKey && keyIs(e, "z"))), run: redo },
  { keys: "Ctrl+O", action: "open a query photo: a new query (undo brings the old one back)", where: ANYWHERE,
    match: (e) => ctrl(e) && keyIs(e, "o"), run: () => $("photo-input").click() },
  { keys: "F1", action: "this list of keys (also ?)", where: ANYWHERE,
    match: (e) => e.key === "F1", run: toggleHelp },
  { keys: "?", action: "this list of keys", where: NOT_TYPING,
    match: (e) => !e.ctrlKey && !e.metaKey && e.key === "?", run: toggleHelp },
  { keys: "B", action: "brush", where: NOT_TYPING, match: (e) => plain(e) && keyIs(e, "b"), run: () => setTool("brush") },
  { keys: "E", action: "eraser (or draw with the right button)", where: NOT_TYPING,
    match: (e) => plain(e) && keyIs(e, "e"), run: () => setTool("eraser") },
  { keys: "X", action: "box: drag a rectangle of the class (also R)", where: NOT_TYPING,
    match: (e) => plain(e) && keyIs(e, "x", "r"), run: () => setTool("box") },
  { keys: "F", action: "flood fill (the connected region of one label)", where: NOT_TYPING,
    match: (e) => plain(e) && keyIs(e, "f"), run: () => setTool("fill") },
  { keys: "[", action: "smaller brush", where: NOT_TYPING, match: (e) => plain(e) && e.key === "[", run: () => changeBrush(-1) },
  { keys: "]", action: "larger brush", where: NOT_TYPING, match: (e) => plain(e) && e.key === "]", run: () => changeBrush(+1) },
  { keys: "L", action: "more like the result with the focus or under the pointer (again: take it back)",
    where: NOT_TYPING, when: () => takes("like"),
    match: (e) => plain(e) && keyIs(e, "l"), run: () => likeFocused("like") },
  { keys: "U", action: "fewer like the result with the focus or under the pointer (again: take it back)",
    where: NOT_TYPING, when: () => takes("unlike"),
    match: (e) => plain(e) && keyIs(e, "u"), run: () => likeFocused("unlike") },
  { keys: "Delete", action: "clear the sketch", where: NOT_TYPING,
    match: (e) => plain(e) && e.key === "Delete", run: clearSketch },
  { keys: "Enter", action: "search now (in the class filter: pick the class)", where: NOT_TYPING,
    match: (e) => plain(e) && e.key === "Enter", run: search },
  { keys: "Esc", action: "close this list", where: ANYWHERE,
    match: (e) => e.key === "Escape", run: closeHelp },
];

function isTyping(el) {
  if (!el) return false;
  if (el.isContentEditable || el.tagName === "TEXTAREA" || el.tagName === "SELECT") return true;
  return el.tagName === "INPUT" && !["range", "checkbox", "radio", "button", "submit", "file"].includes(el.type);
}

// Enter on a button or link activates it, as browsers do: the shortcut leaves it alone.
function isActivatable(el) {
  return !!el && (el.tagName === "BUTTON" || el.tagName === "A" || el.tagName === "LABEL");
}

function onKey(e) {
  if (!$("token-dialog").hidden) return;
  const target = e.target;
  for (const s of SHORTCUTS) {
    if (!s.match(e) || (s.when && !s.when())) continue;
    if (s.where === NOT_TYPING && isTyping(target)) return;
    if (e.key === "Enter" && isActivatable(target)) return;
    e.preventDefault();
    s.run();
    return;
  }
}

function buildHelp() {
  const rows = SHORTCUTS.filter((s) => !s.when || s.when()).map((s) =>
    el("tr", "", {}, ...[s.keys, s.action, s.where].map((text) => el("td", "", { textContent: text }))),
  );
  $("shortcut-table").tBodies[0].replaceChildren(...rows);
}

function toggleHelp() {
  const help = $("help-dialog");
  help.hidden = !help.hidden;
  if (!help.hidden) $("help-close").focus();
}

function closeHelp() {
  $("help-dialog").hidden = true;
}

// ------------------------------------------------------------------------------------------ controls
function bindControls() {
  for (const b of document.querySelectorAll(".tool")) b.addEventListener("click", () => setTool(b.dataset.tool));
  $("brush-size").addEventListener("input", (e) => setBrush(Number(e.target.value)));
  $("undo").addEventListener("click", undo);
  $("redo").addEventListener("click", redo);
  $("clear").addEventListener("click", clearSketch);
  $("search-button").addEventListener("click", search);
  $("remove-photo").addEventListener("click", removePhoto);
  $("help-button").addEventListener("click", toggleHelp);
  $("help-close").addEventListener("click", closeHelp);
  $("help-dialog").addEventListener("click", (e) => e.target === e.currentTarget && closeHelp());
  $("photo-input").addEventListener("change", (e) => {
    const file = e.target.files[0];
    e.target.value = ""; // the same file again is a change too
    if (file) openFile(file);
  });
  $("class-filter").addEventListener("input", filterPalette);
  $("class-filter").addEventListener("keydown", (e) => {
    if (e.key !== "Enter") return;
    e.preventDefault();
    pickFiltered();
  });
  $("words").addEventListener("input", () => scheduleSearch(400));
  $("words").addEventListener("keydown", (e) => {
    if (e.key !== "Enter") return;
    e.preventDefault();
    search();
  });
  document.addEventListener("keydown", onKey);
  bindFilters();
  bindTokenForm();
}

function main() {
  bindControls();
  bindCanvas();
  buildHelp();
  setTool("brush");
  setBrush(state.brush);
  fitCanvas();
  connect();
}

main();
