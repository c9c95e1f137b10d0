// jobd dashboard: a little plain JavaScript, no build step. Every value goes into the page as
// text (textContent), never as markup.
"use strict";
(function () {
  const page = document.body.dataset.page;
  const STATES = ["queued", "running", "succeeded", "failed", "timed_out", "cancelled",
                  "skipped", "upstream_failed", "pending"];

  function cls(state) { return "st-" + (STATES.includes(state) ? state : "pending"); }
  function setState(el, state) {
    for (const s of STATES) el.classList.remove("st-" + s);
    el.classList.add(cls(state));
  }
  function clock(iso) {
    return iso ? new Date(iso).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z")
                                .replace(/\+00:00$/, "Z") : "";
  }
  function relative(iso) {
    const s = (new Date(iso).getTime() - Date.now()) / 1000, n = Math.abs(s);
    if (n < 1) return "now";
    let t;
    if (n >= 86400) t = Math.floor(n / 86400) + " d";
    else if (n >= 3600) t = Math.floor(n / 3600) + " h";
    else if (n >= 60) t = Math.floor(n / 60) + " min";
    else t = Math.floor(n) + " s";
    return s > 0 ? "in " + t : t + " ago";
  }
  function tick() {
    for (const el of document.querySelectorAll("time[data-ts]")) el.textContent = relative(el.dataset.ts);
  }
  setInterval(tick, 5000);

  function live(url, handlers) {
    const es = new EventSource(url);
    const badge = document.getElementById("live");
    es.onopen = () => { if (badge) badge.hidden = false; };
    es.onerror = () => { if (badge) badge.hidden = true; };
    for (const [name, fn] of Object.entries(handlers)) {
      es.addEventListener(name, (ev) => fn(JSON.parse(ev.data), es));
    }
    return es;
  }

  function timeEl(iso) {
    const t = document.createElement("time");
    t.dataset.ts = iso; t.title = clock(iso); t.textContent = relative(iso);
    return t;
  }

  function onJobsRun(run) {
    const row = document.querySelector('tr[data-job="' + CSS.escape(run.job_id) + '"]');
    if (!row) return;
    const now = row.querySelector("td.now");
    if (run.state === "queued" || run.state === "running") {
      const b = document.createElement("span");
      b.className = "badge " + cls(run.state);
      b.textContent = run.state + " · run " + run.run_id;
      now.replaceChildren(b);
      return;
    }
    now.replaceChildren();
    const last = row.querySelector("td.last");
    const a = document.createElement("a");
    a.href = "/runs/" + run.run_id; a.textContent = "run " + run.run_id;
    last.replaceChildren(a, document.createTextNode(" "), timeEl(run.finished_at || run.queued_at));
    row.querySelector("td.state").textContent = run.state;
    setState(row, run.state);
  }

  function onRunsRun(run) {
    const row = document.querySelector('tr[data-run="' + run.run_id + '"]');
    if (row) {
      row.querySelector("td.state").textContent = run.state;
      setState(row, run.state);
    } else if (document.body.dataset.firstPage === "yes" && run.state === "queued") {
      const fresh = document.getElementById("fresh");
      if (fresh) { fresh.hidden = false; fresh.querySelector("a").href = location.href; }
    }
  }

  function onFlowRun(run) {
    if (run.flow_id !== document.body.dataset.flow) return;
    const node = document.querySelector('g.node[data-job="' + CSS.escape(run.job_id) + '"]');
    if (!node) return;
    node.dataset.state = run.state;
    for (const el of node.querySelectorAll("rect, text")) setState(el, run.state);
    const sub = node.querySelector("text.sub");
    if (sub) sub.textContent = run.state + " · run " + run.run_id;
  }

  function runPage() {
    const id = document.body.dataset.run;
    const log = document.getElementById("log");
    const status = document.getElementById("log-status");
    const state = document.getElementById("run-state");
    live("/runs/" + id + "/events", {
      run(run) {
        state.textContent = run.state; setState(state, run.state);
        for (const f of ["started_at", "finished_at"]) {
          const el = document.querySelector('[data-field="' + f + '"]');
          if (el) el.textContent = clock(run[f]);
        }
        const code = document.querySelector('[data-field="exit_code"]');
        if (code) code.textContent = run.exit_code === null ? "" : String(run.exit_code);
        if (status) status.textContent = run.state === "running" || run.state === "queued" ? "following" : "";
      },
      log(chunk) {
        if (!log) return;
        const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
        log.appendChild(document.createTextNode(chunk.text));
        if (atEnd) log.scrollTop = log.scrollHeight;
      },
      end(run, es) {
        es.close();
        if (status) status.textContent = "complete";
        if (log && !log.textContent) log.textContent = "(no output)";
        const o = document.querySelector('[data-field="outputs"]');
        if (o && Object.keys(run.outputs).length) {
          o.replaceChildren(...Object.entries(run.outputs).map(([k, v]) => {
            const d = document.createElement("div");
            const ck = document.createElement("code"); ck.textContent = k;
            const cv = document.createElement("code"); cv.textContent = v;
            d.append(ck, " = ", cv); return d;
          }));
        }
        document.getElementById("live").hidden = true;
      },
    });
  }

  function timelinePage() {
    const svg = document.getElementById("timeline");
    const band = document.getElementById("zoom-band");
    const off = Number(svg.dataset.offset), width = Number(svg.dataset.width);
    const start = new Date(document.body.dataset.start).getTime();
    const end = new Date(document.body.dataset.end).getTime();
    let from = null;
    const xOf = (ev) => {
      const p = svg.createSVGPoint(); p.x = ev.clientX; p.y = ev.clientY;
      const x = p.matrixTransform(svg.getScreenCTM().inverse()).x - off;
      return Math.max(0, Math.min(width, x));
    };
    svg.addEventListener("mousedown", (ev) => { from = xOf(ev); band.hidden = false; band.setAttribute("x", off + from); band.setAttribute("width", 0); ev.preventDefault(); });
    svg.addEventListener("mousemove", (ev) => {
      if (from === null) return;
      const x = xOf(ev);
      band.setAttribute("x", off + Math.min(from, x)); band.setAttribute("width", Math.abs(x - from));
    });
    svg.addEventListener("mouseup", (ev) => {
      if (from === null) return;
      const x = xOf(ev), a = Math.min(from, x), b = Math.max(from, x);
      from = null; band.hidden = true;
      if (b - a < 4) return;
      const t = (v) => start + (end - start) * v / width;
      const hours = (t(b) - t(a)) / 3600000;
      location.href = "/timeline?hours=" + hours.toFixed(4) + "&end=" + encodeURIComponent(new Date(t(b)).toISOString());
    });
  }

  if (page === "jobs") live("/events", { run: onJobsRun });
  else if (page === "runs") live("/events", { run: onRunsRun });
  else if (page === "flow") live("/events", { run: onFlowRun });
  else if (page === "run") runPage();
  else if (page === "timeline") timelinePage();
})();
