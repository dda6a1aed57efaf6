// The report's page: renders the embedded JSON with createElement and textContent only (never innerHTML), so a
// question or an output holding markup shows as text. State (view, cell, filter, sort, search, page) is in the URL hash.
"use strict";
const DATA = JSON.parse(document.getElementById("report-data").textContent);
const PAGE_SIZE = 50;
const DEFAULTS = { view: "overview", cell: "0", filter: "all", sort: "order", q: "", page: "1" };

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
  if (!params.has("view") && ["cell", "filter", "q", "page", "sort"].some((k) => params.has(k))) state.view = "cell";
  return state;
}

function writeState(changes) {
  const state = Object.assign(readState(), changes);
  const params = new URLSearchParams();
  for (const key of Object.keys(DEFAULTS)) if (state[key] !== DEFAULTS[key] || key === "view") params.set(key, state[key]);
  location.hash = params.toString();
}

function renderOverview() {
  const section = document.getElementById("overview");
  section.replaceChildren();
  const columns = ["model", "prompt_format", "selection", "task", "metric", "shots", "mean", "std", "n"];
  const head = el("tr", null, ...columns.map((c) => el("th", null, c)));
  const rows = DATA.overview.map((row) => el("tr", null, ...columns.map((c) => {
    const value = row[c];
    return typeof value === "number" ? el("td", "number", Number.isInteger(value) ? String(value) : value.toFixed(2))
                                     : el("td", null, shown(value));
  })));
  section.appendChild(el("h2", null, "Leaderboard"));
  section.appendChild(el("p", null, "Scores (0-100): mean and sample std over seeds, as evals leaderboard prints them."));
  section.appendChild(el("table", "leaderboard", el("thead", null, head), el("tbody", null, ...rows)));
  if (typeof DATA.plot === "string" && DATA.plot.startsWith("data:image/png;base64,")) {
    const plot = el("img", "plot");
    plot.alt = "score against shots per task";
    plot.src = DATA.plot;
    section.appendChild(el("h2", null, "Score against shots"));
    section.appendChild(plot);
  }
}

function matches(sample, filter, query) {
  if (filter !== "all" && sample.outcome !== filter) return false;
  if (!query) return true;
  if (sample._search === undefined) {
    const prompts = sample.prompts.map((p) => p.map((s) => s.text || "").join(" ")).join(" ");
    sample._search = [sample.id, prompts, shown(sample.output), shown(sample.prediction), shown(sample.references)]
      .join("\n").toLowerCase();
  }
  return sample._search.includes(query.toLowerCase());
}

function visibleSamples(cell, state) {
  const chosen = cell.samples.filter((s) => matches(s, state.filter, state.q));
  if (state.sort === "score-asc") chosen.sort((a, b) => a.score - b.score);
  if (state.sort === "score-desc") chosen.sort((a, b) => b.score - a.score);
  return chosen;
}

// From a file, a thumbnail is a data: URI in DATA.images; served (evals view --serve), a URL the server encodes on demand.
function imageSource(key) {
  if (DATA.served) return "thumb/" + encodeURIComponent(key);
  return typeof DATA.images[key] === "string" ? DATA.images[key] : null;
}

function promptView(segments) {
  const box = el("div", "prompt");
  for (const segment of segments) {
    if ("text" in segment) {
      box.appendChild(el("pre", "text", segment.text));
    } else if (segment.image && imageSource(segment.image)) {
      const image = el("img", "thumb");
      image.src = imageSource(segment.image);
      image.alt = "image " + segment.image_id;
      image.dataset.imageId = segment.image_id;
      box.appendChild(image);
    } else {
      box.appendChild(el("span", "missing", "image not available"));
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
  add("shots", sample.shot_ids.join(", ") || "none");
  const card = el("article", "sample " + sample.outcome,
    el("h3", null, "query " + sample.id + " \u00b7 score " + sample.score.toFixed(2) + " (" + sample.outcome + ")"),
    ...sample.prompts.map(promptView), fields, sample.candidates ? candidatesView(sample.candidates) : null);
  card.dataset.id = sample.id;
  card.dataset.outcome = sample.outcome;
  return card;
}

function renderCell(state) {
  const index = Math.min(Math.max(parseInt(state.cell, 10) || 0, 0), DATA.cells.length - 1);
  const cell = DATA.cells[index];
  document.getElementById("cell-picker").value = String(index);
  document.getElementById("filter").value = state.filter;
  document.getElementById("sort").value = state.sort;
  const search = document.getElementById("search");
  if (search.value !== state.q) search.value = state.q;
  const scores = Object.entries(cell.scores).map(([k, v]) => k + " " + v.toFixed(2)).join(", ");
  document.getElementById("cell-header").replaceChildren(el("h2", null, cell.label), el("p", null, scores + " \u00b7 " + cell.path),
    ...cell.notes.map((n) => el("p", "notes", n)));
  if (DATA.served) return fetchPage(index, state);
  const chosen = visibleSamples(cell, state);
  const pages = Math.max(1, Math.ceil(chosen.length / PAGE_SIZE));
  const page = Math.min(Math.max(parseInt(state.page, 10) || 1, 1), pages);
  const start = (page - 1) * PAGE_SIZE;
  showPage({ page, pages, matched: chosen.length, total: cell.samples.length,
             samples: chosen.slice(start, start + PAGE_SIZE) });
}

// One page of samples; body's data-rendered-ms is when it was drawn (performance.now(), read by the benchmark).
function showPage(got) {
  document.getElementById("page-info").dataset.page = String(got.page);
  document.getElementById("page-info").textContent =
    "page " + got.page + " of " + got.pages + " \u00b7 " + got.matched + " of " + got.total + " samples";
  document.getElementById("previous").disabled = got.page <= 1;
  document.getElementById("next").disabled = got.page >= got.pages;
  document.getElementById("samples").replaceChildren(...got.samples.map(sampleView));
  document.body.dataset.renderedMs = performance.now().toFixed(1);
}

// Served, the server filters, searches, sorts and pages (a cell may hold 200,000 samples); only the latest answer shows.
let latestFetch = 0;
function fetchPage(index, state) {
  const ticket = ++latestFetch;
  const params = new URLSearchParams({ cell: String(index), filter: state.filter, sort: state.sort, q: state.q, page: state.page });
  fetch("samples?" + params.toString())
    .then((response) => { if (!response.ok) throw new Error("HTTP " + response.status); return response.json(); })
    .then((got) => { if (ticket === latestFetch) showPage(got); })
    .catch((error) => document.getElementById("samples").replaceChildren(el("p", "notes", "samples not loaded: " + error.message)));
}

function render() {
  const state = readState();
  document.getElementById("overview").hidden = state.view !== "overview";
  document.getElementById("cell").hidden = state.view !== "cell";
  if (state.view === "cell" && DATA.cells.length) renderCell(state);
}

function setUp() {
  const picker = document.getElementById("cell-picker");
  DATA.cells.forEach((cell, i) => { const option = el("option", null, cell.label); option.value = String(i); picker.appendChild(option); });
  picker.addEventListener("change", () => writeState({ view: "cell", cell: picker.value, page: "1" }));
  for (const id of ["filter", "sort"]) {
    const control = document.getElementById(id);
    control.addEventListener("change", () => writeState({ view: "cell", [id]: control.value, page: "1" }));
  }
  const search = document.getElementById("search");
  search.addEventListener("input", () => writeState({ view: "cell", q: search.value, page: "1" }));
  const step = (delta) => () => writeState({ page: String(Number(document.getElementById("page-info").dataset.page) + delta) });
  document.getElementById("previous").addEventListener("click", step(-1));
  document.getElementById("next").addEventListener("click", step(1));
  window.addEventListener("hashchange", render);
  renderOverview();
  render();
}

setUp();
