// A tiny canvas sparkline (uPlot is too heavy for one per row on a 200-firewall overview).
import { themeColor } from "./common.js";

export function drawSparkline(canvas, points, fields) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 120;
  const h = canvas.clientHeight || 28;
  canvas.width = Math.round(w * ratio);
  canvas.height = Math.round(h * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const times = points.map((p) => Date.parse(p.t));
  let max = 0;
  for (const p of points) for (const f of fields) if (Number.isFinite(p[f.key])) max = Math.max(max, p[f.key]);
  if (points.length < 2 || !(times[times.length - 1] > times[0])) return false;
  const t0 = times[0];
  const span = times[times.length - 1] - t0;
  const scale = max > 0 ? max : 1;
  for (const f of fields) {
    ctx.strokeStyle = themeColor(f.color, "#888");
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let drawing = false;
    points.forEach((p, i) => {
      const v = p[f.key];
      if (!Number.isFinite(v)) { drawing = false; return; }
      const x = ((times[i] - t0) / span) * (w - 2) + 1;
      const y = h - 2 - (v / scale) * (h - 4);
      if (drawing) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      drawing = true;
    });
    ctx.stroke();
  }
  return true;
}
