// uPlot charts of the firewall page: history points (flat metric names) to aligned arrays.
import uPlot from "../vendor/uPlot.esm.js";
import { themeColor } from "./common.js";

const C = (name, fallback) => themeColor(name, fallback);

// Series of each chart: [field, label, colour variable, kind]; kind "max" is the upper edge
// of a band drawn down to the average series just before it.
export const CHARTS = {
  // Through the box (each packet once) is the headline; In/Out are the marked uplinks' (WAN).
  throughput: [
    ["through_mbps", "Through Mbps", "--series-1", "avg"],
    ["through_mbps_max", "Through max", "--series-1", "max"],
    ["uplink_in_mbps", "WAN in Mbps", "--series-3", "avg"],
    ["uplink_out_mbps", "WAN out Mbps", "--series-2", "avg"],
  ],
  sessions: [
    ["sessions_active", "Active sessions", "--series-1", "avg"],
    ["sessions_active_max", "Max", "--series-1", "max"],
  ],
  cpu: [
    ["cpu_dataplane_pct", "Dataplane %", "--series-1", "avg"],
    ["cpu_dataplane_pct_max", "Dataplane max %", "--series-1", "max"],
    ["cpu_management_pct", "Management %", "--series-3", "avg"],
  ],
  memory: [
    ["memory_pct", "Memory %", "--series-2", "avg"],
    ["packet_buffer_pct", "Packet buffer %", "--series-4", "avg"],
    ["sessions_utilization_pct", "Session table %", "--series-3", "avg"],
  ],
};

// Turn API points into uPlot's columns. Missing values stay null (a gap, not a zero), and a
// null is inserted where points are much further apart than usual so a line never bridges
// an outage.
export function toColumns(points, fields, bucketS) {
  const xs = [];
  const cols = fields.map(() => []);
  let step = bucketS || null;
  if (!step && points.length > 2) {
    const diffs = [];
    for (let i = 1; i < points.length; i++) diffs.push(Date.parse(points[i].t) - Date.parse(points[i - 1].t));
    diffs.sort((a, b) => a - b);
    step = diffs[Math.floor(diffs.length / 2)] / 1000;
  }
  let prev = null;
  for (const p of points) {
    const t = Date.parse(p.t) / 1000;
    if (!Number.isFinite(t)) continue;
    if (prev !== null && step && t - prev > 2.5 * step) {
      xs.push(prev + step);
      cols.forEach((c) => c.push(null));
    }
    xs.push(t);
    fields.forEach(([key], i) => {
      const v = p[key];
      cols[i].push(typeof v === "number" && Number.isFinite(v) ? v : null);
    });
    prev = t;
  }
  return [xs, ...cols];
}

function options(fields, width, onSeries) {
  const fg = C("--fg", "#222");
  const grid = C("--grid", "rgba(128,128,128,0.2)");
  const series = [{}];
  const bands = [];
  fields.forEach(([, label, color, kind], i) => {
    const stroke = C(color, "#1f6feb");
    if (kind === "max") {
      series.push({ label, stroke, width: 0.5, dash: [4, 4], points: { show: false } });
      // Band between this max (index i+1) and the average right before it (index i).
      bands.push({ series: [i + 1, i], fill: C(color + "-fill", "rgba(31,111,235,0.15)") });
    } else {
      series.push({ label, stroke, width: 1.5, points: { show: false } });
    }
  });
  const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
  return {
    width,
    height: 220,
    series,
    bands,
    axes: [{ ...axis }, { ...axis, size: 70 }],
    scales: { x: { time: true } },
    legend: { live: true },
    cursor: { drag: { x: true, y: false } },
    hooks: onSeries ? { setSeries: [(u, idx) => { if (idx !== null && idx > 0) onSeries(idx, u.series[idx].show); }] } : {},
  };
}

export class Chart {
  // `hidden`: series indexes (1-based, as uPlot counts) to start hidden; `onSeries(idx, shown)`
  // hears the legend's clicks (the firewall page keeps them in the URL).
  constructor(container, fields, hidden = [], onSeries = null) {
    this.container = container;
    this.fields = fields;
    this.plot = null;
    this.hidden = new Set(hidden);
    this.onSeries = onSeries;
    new ResizeObserver(() => {
      if (this.plot) this.plot.setSize({ width: this.width(), height: 220 });
    }).observe(container);
  }

  width() {
    return Math.max(280, this.container.clientWidth || 600);
  }

  // Draw `points` over the requested window [start, end] (epoch seconds): a fresh install
  // shows a short line at the right edge of "24h", not a day that seems fully covered.
  update(points, bucketS, window) {
    const data = toColumns(points, this.fields, bucketS);
    if (this.plot) this.plot.setData(data, false);
    else this.create(data);
    this.window = window;
    if (window) this.plot.setScale("x", { min: window[0], max: window[1] });
  }

  create(data) {
    const report = (idx, shown) => {
      if (shown) this.hidden.delete(idx);
      else this.hidden.add(idx);
      if (this.onSeries) this.onSeries();
    };
    const opts = options(this.fields, this.width(), report);
    opts.series.forEach((s, i) => { if (i > 0 && this.hidden.has(i)) s.show = false; });
    this.plot = new uPlot(opts, data, this.container);
  }

  // Rebuild with the current theme's colours (after a theme change).
  restyle() {
    if (!this.plot) return;
    const data = this.plot.data;
    this.plot.destroy();
    this.create(data);
    if (this.window) this.plot.setScale("x", { min: this.window[0], max: this.window[1] });
  }
}
