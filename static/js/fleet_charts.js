// Overview charts: the fleet's through-the-box throughput stacked by firewall, and its sessions.
import uPlot from "../vendor/uPlot.esm.js";
import { themeColor } from "./common.js";

const COLORS = ["--series-1", "--series-2", "--series-3", "--series-4"];
const SHOWN = 7; // firewalls drawn by name; the rest are stacked as "others"
const HEIGHT = 200;
const COMPACT = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });

function num(v) {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

// The busiest firewalls by peak, the rest summed as "others" (a slot where none has data stays null).
export function stackGroups(devices, key) {
  const peak = (d) => Math.max(0, ...d[key].map((v) => num(v) ?? 0));
  const sorted = [...devices].sort((a, b) => peak(b) - peak(a));
  const groups = sorted.slice(0, SHOWN).map((d) => ({ name: d.name, values: d[key].map(num) }));
  const rest = sorted.slice(SHOWN);
  if (rest.length) {
    const n = rest[0][key].length;
    const values = Array.from({ length: n }, (_, i) => {
      const vs = rest.map((d) => num(d[key][i])).filter((v) => v !== null);
      return vs.length ? vs.reduce((a, b) => a + b, 0) : null;
    });
    groups.push({ name: `${rest.length} others`, values });
  }
  return groups;
}

// Cumulative sums, bottom group first; a slot where no group has data is a gap (null).
export function stack(groups) {
  const n = groups.length ? groups[0].values.length : 0;
  const out = [];
  let below = Array(n).fill(null);
  for (const g of groups) {
    const cum = g.values.map((v, i) => (v === null && below[i] === null ? null : (below[i] ?? 0) + (v ?? 0)));
    out.push(cum);
    below = cum;
  }
  return out;
}

class FleetChart {
  constructor(container) {
    this.container = container;
    this.plot = null;
    new ResizeObserver(() => { if (this.plot) this.plot.setSize({ width: this.width(), height: HEIGHT }); }).observe(container);
  }

  width() {
    return Math.max(260, this.container.clientWidth || 500);
  }

  draw(xs, series, window) {
    const fg = themeColor("--fg", "#222");
    const grid = themeColor("--grid", "rgba(128,128,128,0.2)");
    const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const opts = {
      width: this.width(),
      height: HEIGHT,
      series: [{}, ...series.map((s) => s.opts)],
      axes: [{ ...axis }, { ...axis, size: 56, values: (u, splits) => splits.map((v) => (v === null ? "" : COMPACT.format(v))) }],
      scales: { x: { time: true } },
      legend: { live: true },
    };
    const data = [xs, ...series.map((s) => s.data)];
    if (this.plot) this.plot.destroy();
    this.plot = new uPlot(opts, data, this.container);
    if (window) this.plot.setScale("x", { min: window[0], max: window[1] });
  }
}

export class StackedChart extends FleetChart {
  // Top of the stack first, each filled down to the axis, so the lower ones paint over it;
  // the legend shows each firewall's own value, not the running sum.
  update(doc, key, window) {
    const xs = doc.t.map((t) => Date.parse(t) / 1000 + doc.step_s / 2);
    const groups = stackGroups(doc.devices, key);
    const sums = stack(groups);
    const series = groups.map((g, i) => {
      const color = COLORS[i % COLORS.length];
      return {
        data: sums[i],
        opts: {
          label: g.name,
          stroke: themeColor(color, "#1f6feb"),
          fill: themeColor(color + "-fill", "rgba(31,111,235,0.15)"),
          width: 1,
          points: { show: false },
          value: (u, v, si, idx) => (idx === null || idx === undefined || g.values[idx] === null ? "—"
            : g.values[idx].toFixed(1)),
        },
      };
    }).reverse();
    this.draw(xs, series, window);
  }
}

export class TotalChart extends FleetChart {
  update(doc, key, label, window) {
    const xs = doc.t.map((t) => Date.parse(t) / 1000 + doc.step_s / 2);
    const total = stack([{ values: xs.map((_, i) => {
      const vs = doc.devices.map((d) => num(d[key][i])).filter((v) => v !== null);
      return vs.length ? vs.reduce((a, b) => a + b, 0) : null;
    }) }])[0] || [];
    this.draw(xs, [{ data: total, opts: { label, stroke: themeColor("--series-1", "#1f6feb"),
      fill: themeColor("--series-1-fill", "rgba(31,111,235,0.15)"), width: 1.5, points: { show: false } } }], window);
  }
}
