// Fine-tuning dashboard: replays /api/state, then follows /events (server-sent events). Charts are uPlot.
/* global uPlot */
(() => {
  const steps = [];
  const loss = [];
  const val = [];
  const lr = [];
  const tps = [];
  const samples = new Map();
  let lastEventId = 0;

  function chart(el, series, height, yValues) {
    const width = Math.max(380, el.clientWidth || 420);
    return new uPlot(
      {
        width,
        height,
        scales: { x: { time: false } },
        axes: [{ label: "step" }, yValues ? { values: yValues, size: 70 } : { size: 60 }],
        series: [{ label: "step" }, ...series],
        legend: { live: true },
      },
      [steps, ...series.map(() => [])],
      el,
    );
  }
  const lossChart = chart(
    document.getElementById("loss-chart"),
    [
      { label: "train", stroke: "#2b6cb0", width: 2 },
      { label: "validation", stroke: "#dd6b20", width: 2, spanGaps: true, points: { show: true, size: 6 } },
    ],
    260,
  );
  const lrChart = chart(
    document.getElementById("lr-chart"),
    [{ label: "lr", stroke: "#2f855a", width: 2 }],
    200,
    (_u, vals) => vals.map((v) => (v === 0 ? "0" : v.toExponential(1))),
  );
  const tpsChart = chart(
    document.getElementById("tps-chart"),
    [{ label: "tokens/s", stroke: "#6b46c1", width: 2 }],
    200,
  );

  let pending = false;
  function redraw() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      lossChart.setData([steps, loss, val]);
      lrChart.setData([steps, lr]);
      tpsChart.setData([steps, tps]);
    });
  }

  const fmt = (x) =>
    typeof x === "number"
      ? Math.abs(x) >= 1e5 || (x !== 0 && Math.abs(x) < 1e-3)
        ? x.toExponential(3)
        : +x.toFixed(4)
      : String(x);
  function summary(obj) {
    const el = document.getElementById("summary");
    el.replaceChildren();
    for (const [k, v] of Object.entries(obj)) {
      if (v === null || typeof v === "object") continue;
      const d = document.createElement("div");
      const b = document.createElement("b");
      b.textContent = k;
      d.append(b, document.createTextNode(fmt(v)));
      el.append(d);
    }
  }

  function renderSamples() {
    const body = document.getElementById("samples-body");
    body.replaceChildren();
    for (const [prompt, s] of samples) {
      const tr = document.createElement("tr");
      for (const t of [prompt, s.before ?? "", s.after ?? "…"]) {
        const td = document.createElement("td");
        td.textContent = t;
        tr.append(td);
      }
      body.append(tr);
    }
  }

  const status = document.getElementById("status");
  function apply(e) {
    if (e.type === "start") {
      status.textContent = `training ${e.info.method} / ${e.info.task} on ${e.info.modelType}`;
      const p = e.info.parameters || {};
      summary({
        trainable: p.trainable,
        total: p.total,
        "trainable share": p.share,
        steps: e.info.steps,
        ...(e.info.examples || {}),
      });
    } else if (e.type === "step") {
      steps.push(e.step);
      loss.push(e.loss);
      val.push(e.valLoss ?? null);
      lr.push(e.lr);
      tps.push(e.tokensPerSec);
      status.textContent = `step ${e.step} · loss ${fmt(e.loss)}${e.valLoss !== undefined ? ` · val ${fmt(e.valLoss)}` : ""}`;
      redraw();
    } else if (e.type === "samples") {
      for (const s of e.samples) {
        const row = samples.get(s.prompt) || {};
        row[e.when] = s.output;
        samples.set(s.prompt, row);
      }
      renderSamples();
    } else if (e.type === "done") {
      status.textContent = "finished";
      summary(e.report);
    } else if (e.type === "error") {
      status.textContent = `error: ${e.message}`;
    }
  }

  window.__dashboard = { points: () => steps.length, valPoints: () => val.filter((v) => v !== null).length };

  fetch("/api/state")
    .then((r) => r.json())
    .then((s) => {
      for (const e of s.events) apply(e);
      lastEventId = s.events.length;
      const es = new EventSource(`/events?after=${lastEventId}`);
      es.onmessage = (m) => apply(JSON.parse(m.data));
    });
})();
