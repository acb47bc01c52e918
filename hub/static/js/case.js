// The case page: live status/thread/advice, actions through the REST API, and the image viewer
// fed by the hub's rendered DICOMweb (slices, window/level presets and drag, zoom/pan, cine).
import { api, clearFieldErrors, onLive, refresh, showError, showFieldErrors } from "./common.js";

const root = document.getElementById("case");
const caseId = Number(root.dataset.caseId);
const livePart = document.getElementById("live-part");

// -- live ------------------------------------------------------------------------------------
onLive((msg) => {
  if (msg.type === "connect" || msg.case_id === caseId) {
    refresh(livePart, root.dataset.live);
    if (msg.type === "image.received" || msg.type === "connect") viewer.load();
  }
});

// -- actions ---------------------------------------------------------------------------------
livePart.addEventListener("click", async (ev) => {
  if (ev.target.closest("[data-print]")) { window.print(); return; }
  const btn = ev.target.closest("button[data-action]");
  if (!btn) return;
  btn.disabled = true;
  try {
    await api(`/api/v1/cases/${caseId}/${btn.dataset.action}`, { method: "POST" });
    window.location.reload();
  } catch (err) { btn.disabled = false; showError(err); }
});

document.addEventListener("submit", async (ev) => {
  const form = ev.target.closest("form.js-post");
  if (!form) return;
  ev.preventDefault();
  const fields = form.dataset.field.split(" ");  // e.g. "reason instructions"
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  clearFieldErrors(form);
  try {
    const body = Object.fromEntries(fields.map((name) => [name, form.elements[name].value]));
    await api(form.dataset.url, { method: "POST", body });
    for (const name of fields) form.elements[name].value = "";
    if ("reload" in form.dataset) window.location.reload();
    else refresh(livePart, root.dataset.live);
  } catch (err) {
    showError(err, showFieldErrors(err.fields, (path) => (path.length === 1 ? form.elements[path[0]] : null)));
  } finally { button.disabled = false; }
});

const adviceForm = document.getElementById("advice-form");
if (adviceForm) {
  const rxList = document.getElementById("rx");
  const rxRow = document.getElementById("rx-row");
  const addRow = () => {
    rxList.append(rxRow.content.cloneNode(true));
    rxList.lastElementChild.querySelector("input").focus({ preventScroll: true });
  };
  document.getElementById("rx-add").addEventListener("click", addRow);
  rxList.addEventListener("click", (ev) => { if (ev.target.closest("[data-remove]")) ev.target.closest("li").remove(); });
  rxList.append(rxRow.content.cloneNode(true));
  adviceForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearFieldErrors(adviceForm);
    const f = adviceForm.elements;
    // Every drug card with anything typed in it is sent, so that an error names the right card;
    // an untouched card (only the default route) is left out.
    const cards = [...rxList.querySelectorAll("li.rx-item")].filter((li) =>
      [...li.querySelectorAll("input")].some((i) => i.name !== "route" && i.value.trim()));
    const prescriptions = cards.map((li) => {
      const item = {};
      for (const input of li.querySelectorAll("input")) if (input.value.trim()) item[input.name] = input.value.trim();
      return item;
    });
    const body = {
      assessment: f.assessment.value, recommendations: f.recommendations.value, disposition: f.disposition.value,
      prescriptions, investigations: f.investigations.value, follow_up_date: f.follow_up_date.value || null,
    };
    const button = adviceForm.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api(adviceForm.dataset.url, { method: "POST", body });
      window.location.reload();
    } catch (err) {
      button.disabled = false;
      const placed = showFieldErrors(err.fields, (path) => {
        if (path[0] === "prescriptions" && path.length === 3) return cards[Number(path[1])]?.querySelector(`[name="${path[2]}"]`);
        return path.length === 1 ? adviceForm.elements[path[0]] : null;
      });
      showError(err, placed, adviceForm.querySelector(".form-error"));
    }
  });
}

// -- viewer ----------------------------------------------------------------------------------
const viewer = (() => {
  const el = {
    box: document.getElementById("viewer"), stage: document.getElementById("stage"),
    img: document.getElementById("slice"), thumbs: document.getElementById("thumbs"),
    empty: document.getElementById("no-images"), preset: document.getElementById("preset"),
    slider: document.getElementById("slider"), play: document.getElementById("play"),
    reset: document.getElementById("reset"), ovSeries: document.getElementById("ov-series"),
    ovWl: document.getElementById("ov-wl"), ovSlice: document.getElementById("ov-slice"),
    doc: document.getElementById("doc"), docTitle: document.getElementById("doc-title"),
    docOpen: document.getElementById("doc-open"), docDownload: document.getElementById("doc-download"),
  };
  const isDocument = (s) => s.kind === "document";
  const state = { series: [], current: null, slices: [], index: 0, window: "", wl: null, zoom: 1, x: 0, y: 0,
                  timer: null, shown: "", loaded: new Set() };

  const base = (s, inst) => `/dicomweb/studies/${s.study_uid}/series/${s.series_uid}/instances/${inst.sop_uid}`;
  const urlOf = (slice) => {
    const path = slice.frame ? `${slice.base}/frames/${slice.frame}/rendered` : `${slice.base}/rendered`;
    const q = new URLSearchParams({ accept: "image/jpeg", quality: "88" });
    if (state.window) q.set("window", state.window);
    return `${path}?${q}`;
  };

  let loading = null;
  function load() {  // one index fetch at a time; a call meanwhile runs once more after it
    if (loading) { loading.again = true; return; }
    loading = { again: false };
    loadIndex().finally(() => { const again = loading.again; loading = null; if (again) load(); });
  }

  async function loadIndex() {
    let data;
    try { data = await api(root.dataset.images); } catch { return; }
    const known = state.series.map((s) => s.series_uid + ":" + s.instances.length).join();
    if (known === data.series.map((s) => s.series_uid + ":" + s.instances.length).join()) return;
    state.series = data.series;
    el.empty.hidden = data.series.length > 0;
    el.thumbs.replaceChildren(...data.series.map(thumb));
    const keep = data.series.find((s) => s.series_uid === state.current?.series_uid);
    const first = data.series.find((s) => !isDocument(s)) || data.series[0];
    if (keep || first) await select(keep || first, !!keep);
    for (const im of el.thumbs.querySelectorAll("img[data-src]")) if (await fetchImage(im.dataset.src)) im.src = im.dataset.src;
  }

  function thumb(s) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "thumb";
    b.dataset.series = s.series_uid;
    const label = document.createElement("span");
    if (isDocument(s)) {  // a PDF report: a document tile, never a rendered (black) preview
      const icon = document.createElement("span");
      icon.className = "doc-thumb";
      icon.textContent = "PDF";
      label.textContent = el.box.dataset.report;
      b.classList.add("document");
      b.append(icon, label);
    } else {
      const img = document.createElement("img");
      const mid = s.instances[Math.floor(s.instances.length / 2)];
      img.dataset.src = `${base(s, mid)}/rendered?accept=image/jpeg&quality=60`;
      img.alt = "";
      const frames = s.instances.length === 1 && s.instances[0].frames > 1 ? s.instances[0].frames : s.instances.length;
      label.textContent = `${s.modality} ${s.number ?? ""} · ${frames}`;
      b.append(img, label);
    }
    b.addEventListener("click", () => select(s));
    return b;
  }

  async function select(s, keepIndex = false) {
    stop();
    state.current = s;
    for (const t of el.thumbs.children) t.classList.toggle("active", t.dataset.series === s.series_uid);
    el.doc.hidden = !isDocument(s);
    el.slider.hidden = isDocument(s);
    if (isDocument(s)) el.play.hidden = true;
    if (isDocument(s)) return showDocument(s);
    const cine = s.instances.length === 1 && s.instances[0].frames > 1;
    state.slices = cine
      ? Array.from({ length: s.instances[0].frames }, (_, i) => ({ base: base(s, s.instances[0]), frame: i + 1 }))
      : s.instances.map((inst) => ({ base: base(s, inst), frame: 0 }));
    if (!keepIndex) { state.index = Math.floor((state.slices.length - 1) / 2); resetView(); }
    state.index = Math.min(state.index, state.slices.length - 1);
    el.slider.max = String(state.slices.length);
    el.play.hidden = !cine;
    for (const t of el.thumbs.children) t.classList.toggle("active", t.dataset.series === s.series_uid);
    el.ovSeries.textContent = [s.modality, s.description].filter(Boolean).join(" · ");
    state.wl = null;
    await show();
    await defaultWindow(s);
  }

  function showDocument(s) {
    // The previous image goes: the stage shows the report's links only.
    state.slices = [];
    state.shown = "";
    el.img.removeAttribute("src");
    delete el.box.dataset.shown;
    el.ovSeries.textContent = el.ovWl.textContent = el.ovSlice.textContent = "";
    const url = `${base(s, s.instances[0])}/rendered?accept=application/pdf`;
    el.docTitle.textContent = s.description || el.box.dataset.report;
    el.docOpen.href = url;
    el.docDownload.href = `${url}&download=1`;
    el.box.dataset.document = s.series_uid;
  }

  async function defaultWindow(s) {
    // The start of a window drag: the image's own window, else a modality default.
    try {
      const meta = await api(`${base(s, s.instances[0])}/metadata`);
      const item = Array.isArray(meta) ? meta[0] : meta;
      const c = item?.["00281050"]?.Value?.[0], w = item?.["00281051"]?.Value?.[0];
      if (typeof c === "number" && typeof w === "number") { state.wl ??= [c, w]; return; }
    } catch { /* fall through */ }
    state.wl ??= s.modality === "CT" ? [40, 400] : [128, 256];
  }

  // One image request at a time (slow links, and a hub on SQLite): the shown slice first,
  // then its neighbours; a failed request is tried again.
  let preloads = [];
  function fetchImage(url, tries = 3) {
    return new Promise((resolve) => {
      const im = new Image();
      im.onload = () => { state.loaded.add(url); resolve(true); };
      im.onerror = () => (tries > 1 ? setTimeout(() => fetchImage(url, tries - 1).then(resolve), 400) : resolve(false));
      im.src = url;
    });
  }

  async function preload(urls) {
    preloads = urls;
    while (preloads.length) {
      const next = preloads.shift();
      if (!state.loaded.has(next)) await fetchImage(next, 1);
    }
  }

  async function show() {
    const slice = state.slices[state.index];
    if (!slice) return;
    const url = urlOf(slice);
    el.slider.value = String(state.index + 1);
    el.ovSlice.textContent = `${state.current.instances.length === 1 && slice.frame ? el.box.dataset.frame : el.box.dataset.slice} ${state.index + 1} / ${state.slices.length}`;
    el.ovWl.textContent = state.window ? `W/L ${state.window}` : "";
    if (state.shown === url) return;
    state.shown = url;
    preloads = [];
    if (await fetchImage(url) && state.shown === url) { el.img.src = url; el.box.dataset.shown = url; }
    if (state.shown !== url) return;
    preload([1, -1, 2, -2, 3, -3].map((d) => state.slices[state.index + d]).filter(Boolean).map(urlOf));
  }

  const go = (delta) => { state.index = Math.max(0, Math.min(state.slices.length - 1, state.index + delta)); show(); };
  const applyTransform = () => { el.img.style.transform = `translate(${state.x}px, ${state.y}px) scale(${state.zoom})`; };
  function resetView() { state.zoom = 1; state.x = 0; state.y = 0; applyTransform(); }
  function stop() { clearInterval(state.timer); state.timer = null; el.play.textContent = "▶"; }

  el.stage.addEventListener("wheel", (ev) => { ev.preventDefault(); go(ev.deltaY > 0 ? 1 : -1); }, { passive: false });
  el.box.addEventListener("keydown", (ev) => {
    const keys = { ArrowDown: () => go(1), ArrowRight: () => go(1), PageDown: () => go(5), ArrowUp: () => go(-1),
      ArrowLeft: () => go(-1), PageUp: () => go(-5), Home: () => go(-1e6), End: () => go(1e6),
      "+": () => { state.zoom *= 1.25; applyTransform(); }, "-": () => { state.zoom /= 1.25; applyTransform(); },
      "0": resetView };
    if (keys[ev.key]) { ev.preventDefault(); keys[ev.key](); }
  });
  el.slider.addEventListener("input", () => { state.index = Number(el.slider.value) - 1; show(); });
  el.preset.addEventListener("change", () => {
    state.window = el.preset.value === "custom" ? state.window : el.preset.value;
    show();
  });
  el.reset.addEventListener("click", () => { resetView(); state.window = ""; el.preset.value = ""; show(); });
  el.play.addEventListener("click", () => {
    if (state.timer) return stop();
    el.play.textContent = "❚❚";
    state.timer = setInterval(() => { state.index = (state.index + 1) % state.slices.length; show(); }, 100);
  });

  // Drag: window/level (horizontal: width, vertical: level); Shift or a second button: pan.
  let drag = null, debounce = null;
  el.stage.addEventListener("pointerdown", (ev) => {
    el.box.focus();
    if (!state.slices.length) return;
    el.stage.setPointerCapture(ev.pointerId);
    drag = { x: ev.clientX, y: ev.clientY, pan: ev.shiftKey || ev.button !== 0, wl: state.wl ? [...state.wl] : [40, 400],
             px: state.x, py: state.y };
  });
  el.stage.addEventListener("pointermove", (ev) => {
    if (!drag) return;
    const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (drag.pan) { state.x = drag.px + dx; state.y = drag.py + dy; applyTransform(); return; }
    const scale = Math.max(1, drag.wl[1] / 200);
    const c = Math.round(drag.wl[0] + dy * scale), w = Math.max(1, Math.round(drag.wl[1] + dx * scale * 2));
    state.window = `${c},${w}`;
    el.preset.value = "custom";
    el.ovWl.textContent = `W/L ${state.window}`;
    clearTimeout(debounce);
    debounce = setTimeout(show, 120);  // one render request per pause, not per mouse move
  });
  const end = () => {
    if (drag && !drag.pan && state.window.includes(",")) state.wl = state.window.split(",").map(Number);
    drag = null;
  };
  el.stage.addEventListener("pointerup", end);
  el.stage.addEventListener("pointercancel", end);
  el.stage.addEventListener("contextmenu", (ev) => ev.preventDefault());

  return { load };
})();
viewer.load();
