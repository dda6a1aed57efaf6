// The report's page: renders the embedded JSON with createElement and textContent only (never innerHTML), so a
// question or an output holding markup shows as text. State (view, cell, filter, sort, search, page) is in the URL hash.
"use strict";
const DATA = JSON.parse(document.getElementById("report-data").textContent);
const PAGE_SIZE = 50;
const DEFAULTS = { view: "overview", cell: "0", filter: "all", type: "", sort: "order", q: "", page: "1" };

function el(tag, className, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function shown(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function readState() {
  const state = Object.assign({}, DEFAULTS);
  const params = new URLSearchParams(location.hash.slice(1));
  for (const key of Object.keys(DEFAULTS)) if (params.has(key)) state[key] = params.get(key);
  if (!params.has("view") && ["a", "b", "flip"].some((k) => params.has(k))) state.view = "compare";
  else if (!params.has("view") && ["cell", "filter", "type", "q", "page", "sort"].some((k) => params.has(k))) state.view = "cell";
  return state;
}

function writeState(changes) {
  const state = Object.assign(readState(), changes);
  const params = new URLSearchParams();
  for (const key of Object.keys(DEFAULTS)) if (state[key] !== DEFAULTS[key] || key === "view") params.set(key, state[key]);
  location.hash = params.toString();
}

const COUNTS = new Set(["shots", "n"]);  // shown as integers; scores with two decimals, as evals leaderboard prints them

function renderOverview() {
  const section = document.getElementById("overview");
  section.replaceChildren();
  const columns = ["model", "prompt_format", "selection", "task", "metric", "shots", "mean", "std", "95% interval",
                   "demonstrations' share", "n"];
  const cellText = (row, c) => {
    if (c === "95% interval") return row.low === null || row.low === undefined ? "n/a" : "[" + row.low.toFixed(2) + ", " + row.high.toFixed(2) + "]";
    if (c === "demonstrations' share") return typeof row.demonstration_share === "number" ? (100 * row.demonstration_share).toFixed(0) + "%" : "";
    return row[c];
  };
  const head = el("tr", null, ...columns.map((c) => el("th", null, c)));
  const rows = DATA.overview.map((row) => el("tr", null, ...columns.map((c) => {
    const value = cellText(row, c);
    if (typeof value !== "number") return el("td", null, shown(value));
    return el("td", "number", COUNTS.has(c) ? String(value) : value.toFixed(2));
  })));
  section.appendChild(el("h2", null, "Leaderboard"));
  section.appendChild(el("p", null, DATA.overview_note || ""));
  section.appendChild(el("table", "leaderboard", el("thead", null, head), el("tbody", null, ...rows)));
  if (typeof DATA.plot === "string" && DATA.plot.startsWith("data:image/png;base64,")) {
    const plot = el("img", "plot");
    plot.alt = "score against shots per task";
    plot.src = DATA.plot;
    section.appendChild(el("h2", null, "Score against shots"));
    section.appendChild(plot);
  }
}

// A type filter is "key=value" (e.g. "answer_type=number"): the sample's data carries that value for that key.
function typeMatches(sample, type) {
  if (!type) return true;
  const at = type.indexOf("=");
  return (sample.types || {})[type.slice(0, at)] === type.slice(at + 1);
}

function matches(sample, filter, query, type) {
  if (filter !== "all" && sample.outcome !== filter) return false;
  if (!typeMatches(sample, type)) return false;
  if (!query) return true;
  if (sample._search === undefined) {
    const prompts = sample.prompts.map((p) => p.map((s) => s.text || "").join(" ")).join(" ");
    sample._search = [sample.id, prompts, shown(sample.output), shown(sample.prediction), shown(sample.references)]
      .join("\n").toLowerCase();
  }
  return sample._search.includes(query.toLowerCase());
}

function visibleSamples(cell, state, type) {
  const chosen = cell.samples.filter((s) => matches(s, state.filter, state.q, type));
  if (state.sort === "score-asc") chosen.sort((a, b) => a.score - b.score);
  if (state.sort === "score-desc") chosen.sort((a, b) => b.score - a.score);
  return chosen;
}

// From a file, a thumbnail is a data: URI in DATA.images; served (evals view --serve), a URL the server encodes on demand.
function imageSource(key) {
  if (DATA.served) return "thumb/" + encodeURIComponent(key);
  return typeof DATA.images[key] === "string" ? DATA.images[key] : null;
}

// Each image opens a row that holds it and the text after it (a demonstration's image comes before its text), so the
// page reads in the prompt's order: one row per demonstration, the query's last.
function promptView(segments) {
  const box = el("div", "prompt");
  let turn = box.appendChild(el("div", "turn"));
  for (const segment of segments) {
    if ("text" in segment) {
      turn.appendChild(el("pre", "text", segment.text));
      continue;
    }
    if (turn.hasChildNodes()) turn = box.appendChild(el("div", "turn"));
    if (segment.image && imageSource(segment.image)) {
      const image = el("img", "thumb");
      image.src = imageSource(segment.image);
      image.alt = "image " + segment.image_id;
      image.dataset.imageId = segment.image_id;
      turn.appendChild(image);
    } else {
      turn.appendChild(el("span", "missing", "image not available"));
    }
  }
  return box;
}

function candidatesView(perPrompt) {
  return el("div", "candidates", ...perPrompt.map((candidates) => el("table", null,
    el("thead", null, el("tr", null, el("th", null, "candidate"), el("th", null, "log-likelihood"))),
    el("tbody", null, ...candidates.map((c) => el("tr", (c.chosen ? "chosen " : "") + (c.gold ? "gold" : ""),
      el("td", null, c.text), el("td", "number", shown(c.loglik))))))));
}

function sampleView(sample) {
  const fields = el("dl", "fields");
  const add = (name, value) => { fields.appendChild(el("dt", null, name)); fields.appendChild(el("dd", name, value)); };
  add("output", shown(sample.output));
  add("prediction", shown(sample.prediction));
  if (sample.references) add("references", sample.references.join(" | "));
  const types = Object.entries(sample.types || {});
  if (types.length) add("type", types.map(([key, value]) => key + ": " + value).join(", "));
  add("shots", sample.shot_ids.join(", ") || "none");
  const card = el("article", "sample " + sample.outcome,
    el("h3", null, "query " + sample.id + " \u00b7 score " + sample.score.toFixed(2) + " (" + sample.outcome + ")"),
    ...sample.prompts.map(promptView), fields, sample.candidates ? candidatesView(sample.candidates) : null);
  card.dataset.id = sample.id;
  card.dataset.outcome = sample.outcome;
  return card;
}

// The type picker offers each key=value the cell's samples carry, with its count (cells.py type_counts, made in
// Python for both modes: served, the page holds no samples to count).
function fillTypes(cell, chosen) {
  const counts = cell.type_counts || {};
  const picker = document.getElementById("type");
  const options = Object.keys(counts).sort().map((option) => {
    const node = el("option", null, option.replace("=", ": ") + " (" + counts[option] + ")");
    node.value = option;
    return node;
  });
  const any = el("option", null, "any");
  any.value = "";
  picker.replaceChildren(any, ...options);
  picker.value = Object.prototype.hasOwnProperty.call(counts, chosen) ? chosen : "";
  return picker.value;
}

function renderCell(state) {
  const index = Math.min(Math.max(parseInt(state.cell, 10) || 0, 0), DATA.cells.length - 1);
  const cell = DATA.cells[index];
  document.getElementById("cell-picker").value = String(index);
  const type = fillTypes(cell, state.type);  // a type this cell lacks (left from another cell) filters nothing
  document.getElementById("filter").value = state.filter;
  document.getElementById("sort").value = state.sort;
  const search = document.getElementById("search");
  if (search.value !== state.q) search.value = state.q;
  const scores = Object.entries(cell.scores).map(([k, v]) => k + " " + v.toFixed(2)).join(", ");
  document.getElementById("cell-header").replaceChildren(el("h2", null, cell.label), el("p", null, scores + " \u00b7 " + cell.path),
    ...cell.notes.map((n) => el("p", "notes", n)));
  if (DATA.served) return fetchPage(index, Object.assign({}, state, { type: type }));
  const chosen = visibleSamples(cell, state, type);
  const pages = Math.max(1, Math.ceil(chosen.length / PAGE_SIZE));
  const page = Math.min(Math.max(parseInt(state.page, 10) || 1, 1), pages);
  const start = (page - 1) * PAGE_SIZE;
  showPage({ page, pages, matched: chosen.length, total: cell.samples.length,
             samples: chosen.slice(start, start + PAGE_SIZE) });
}

// One page of samples; body's data-rendered-ms is when it was drawn (performance.now(), read by the benchmark).
function showPage(got) {
  showPager("cell", got.page, got.pages, got.matched + " of " + got.total + " samples");
  document.getElementById("samples").replaceChildren(...got.samples.map(sampleView));
  document.body.dataset.renderedMs = performance.now().toFixed(1);
}

// The server's /samples answer for these parameters (an HTTP error becomes the promise's error).
function samplesJSON(params) {
  return fetch("samples?" + params.toString())
    .then((response) => { if (!response.ok) throw new Error("HTTP " + response.status); return response.json(); });
}

// Served, the server filters, searches, sorts and pages (a cell may hold 200,000 samples); only the latest answer shows.
let latestFetch = 0;
function fetchPage(index, state) {
  const ticket = ++latestFetch;
  const params = new URLSearchParams({ cell: String(index), filter: state.filter, type: state.type, sort: state.sort, q: state.q,
                                       page: state.page });
  samplesJSON(params)
    .then((got) => { if (ticket === latestFetch) showPage(got); })
    .catch((error) => document.getElementById("samples").replaceChildren(el("p", "notes", "samples not loaded: " + error.message)));
}

function render() {
  const state = readState();
  document.getElementById("overview").hidden = state.view !== "overview";
  document.getElementById("cell").hidden = state.view !== "cell";
  if (state.view === "cell" && DATA.cells.length) renderCell(state);
  document.getElementById("compare").hidden = state.view !== "compare";
  if (state.view === "compare" && DATA.cells.length) renderCompare(state);
}

// --- Compare: two cells side by side and the queries that flip between them. The flips are computed in Python
// (results/view/compare.py, with the functions `evals compare --test paired` uses), stored once per pair of cells of
// one task (a < b) as query ids; the page only looks them up and pages through them.
const FLIP_LISTS = { "right-to-wrong": "right_to_wrong", "wrong-to-right": "wrong_to_right" };
const COMPARE_DEFAULTS = { a: "0", b: "1", flip: "right-to-wrong" };

function comparisonOf(a, b) {
  const found = (DATA.comparisons || []).find((c) => c.a === Math.min(a, b) && c.b === Math.max(a, b));
  if (!found || a < b) return found;
  // B before A: what is higher in the stored pair's first cell is higher in this view's B
  return Object.assign({}, found, { a: a, b: b, right_to_wrong: found.wrong_to_right, wrong_to_right: found.right_to_wrong });
}

function cellIndex(value) {
  return Math.min(Math.max(parseInt(value, 10) || 0, 0), DATA.cells.length - 1);
}

function sampleById(cell, id) {
  if (!cell._byId) cell._byId = new Map(cell.samples.map((s) => [s.id, s]));
  return cell._byId.get(id);
}

function flipSide(name, cell, id) {
  const sample = sampleById(cell, id);
  const body = sample ? sampleView(sample)
    : el("p", "notes", DATA.served ? "query " + id + " is not in this cell's samples file"
      : "query " + id + " is not in this report (the cell shows its first " + cell.samples.length + " samples, --max-samples)");
  const side = el("div", "side", el("h4", null, name + " \u00b7 " + cell.label), body);
  side.dataset.side = name;
  return side;
}

function flipView(id, cellA, cellB) {
  const row = el("div", "flip", flipSide("A", cellA, id), flipSide("B", cellB, id));
  row.dataset.id = id;
  return row;
}

function compareHeader(comparison, cellA, cellB) {
  const count = (kind, text) => {
    const span = el("span", "flip-count", text + ": " + comparison[FLIP_LISTS[kind]].length);
    span.dataset.kind = kind;
    span.dataset.count = String(comparison[FLIP_LISTS[kind]].length);
    return span;
  };
  return [el("h2", null, "A: " + cellA.label + "  \u2192  B: " + cellB.label),
    el("p", null, count("right-to-wrong", "right to wrong (higher in A)"), " \u00b7 ",
       count("wrong-to-right", "wrong to right (higher in B)"), " \u00b7 " + comparison.paired + " queries paired"),
    el("p", null, "A query flips where its score differs between A and B, as evals compare --test paired --flips lists " +
       "them (with scores of 0 or 100, McNemar's discordant queries). Paired by query id on each cell's full samples " +
       "file; a flipped query past a cell's --max-samples cut is listed by id only."),
    ...(comparison.note ? [el("p", "notes", comparison.note)] : [])];
}

function renderCompare(state) {
  const a = cellIndex(state.a), b = cellIndex(state.b);
  const flip = FLIP_LISTS[state.flip] ? state.flip : COMPARE_DEFAULTS.flip;
  document.getElementById("compare-a").value = String(a);
  document.getElementById("compare-b").value = String(b);
  document.getElementById("compare-flip").value = flip;
  const comparison = a === b ? null : comparisonOf(a, b);
  const ids = comparison ? comparison[FLIP_LISTS[flip]] : [];
  const header = comparison ? compareHeader(comparison, DATA.cells[a], DATA.cells[b])
    : [el("p", "notes", a === b ? "Pick two different cells." : "These two cells are not compared: only cells of one task " +
      "and query split, each with its samples file, pair their queries.")];
  document.getElementById("compare-header").replaceChildren(...header);
  const pages = Math.max(1, Math.ceil(ids.length / PAGE_SIZE));
  const page = Math.min(Math.max(parseInt(state.page, 10) || 1, 1), pages);
  showPager("compare", page, pages, ids.length + " queries");
  const shown = ids.slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE);
  const draw = () => document.getElementById("flips").replaceChildren(...shown.map((id) => flipView(id, DATA.cells[a], DATA.cells[b])));
  if (!DATA.served || !shown.length) return draw();
  const ticket = ++latestFetch;
  Promise.all([fetchById(a, shown), fetchById(b, shown)])
    .then(() => { if (ticket === latestFetch) draw(); })
    .catch((error) => document.getElementById("flips").replaceChildren(el("p", "notes", "samples not loaded: " + error.message)));
}

// Served: the samples of these query ids from one cell, kept in the cell's by-id map that flipSide reads.
function fetchById(index, ids) {
  const cell = DATA.cells[index];
  sampleById(cell, "");
  const missing = ids.filter((id) => !cell._byId.has(id));
  if (!missing.length) return Promise.resolve();
  const params = new URLSearchParams({ cell: String(index) });
  for (const id of missing) params.append("id", id);
  return samplesJSON(params).then((got) => { for (const sample of got.samples) cell._byId.set(sample.id, sample); });
}

function setUpCompare() {
  Object.assign(DEFAULTS, COMPARE_DEFAULTS);  // readState/writeState keep a, b and flip in the hash
  for (const side of ["a", "b"]) {
    const picker = document.getElementById("compare-" + side);
    DATA.cells.forEach((cell, i) => { const option = el("option", null, i + ": " + cell.label); option.value = String(i); picker.appendChild(option); });
    picker.addEventListener("change", () => writeState({ view: "compare", [side]: picker.value, page: "1" }));
  }
  const flip = document.getElementById("compare-flip");
  flip.addEventListener("change", () => writeState({ view: "compare", flip: flip.value, page: "1" }));
  wirePager("compare");
}

// A pager (PREFIX-previous, PREFIX-page-info, PREFIX-next) showing `page` of `pages`.
function showPager(prefix, page, pages, text) {
  const info = document.getElementById(prefix + "-page-info");
  info.dataset.page = String(page);
  info.textContent = "page " + page + " of " + pages + " \u00b7 " + text;
  document.getElementById(prefix + "-previous").disabled = page <= 1;
  document.getElementById(prefix + "-next").disabled = page >= pages;
}

function wirePager(prefix) {
  // previous/next step from the page shown (its number is on the page-info element), not from the hash's
  const info = document.getElementById(prefix + "-page-info");
  for (const [id, delta] of [[prefix + "-previous", -1], [prefix + "-next", 1]]) {
    document.getElementById(id).addEventListener("click", () => writeState({ page: String(Number(info.dataset.page) + delta) }));
  }
}

function setUp() {
  const picker = document.getElementById("cell-picker");
  DATA.cells.forEach((cell, i) => { const option = el("option", null, cell.label); option.value = String(i); picker.appendChild(option); });
  picker.addEventListener("change", () => writeState({ view: "cell", cell: picker.value, page: "1" }));
  for (const id of ["filter", "type", "sort"]) {
    const control = document.getElementById(id);
    control.addEventListener("change", () => writeState({ view: "cell", [id]: control.value, page: "1" }));
  }
  const search = document.getElementById("search");
  search.addEventListener("input", () => writeState({ view: "cell", q: search.value, page: "1" }));
  wirePager("cell");
  setUpCompare();
  window.addEventListener("hashchange", render);
  renderOverview();
  render();
}

setUp();
