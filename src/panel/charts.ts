// Charts as server-rendered SVG (no script, no library): disk use over time as a line against the cap,
// sync throughput as bars. Pure: points in, markup out; the only text in the markup is numbers and
// labels we format ourselves.

export interface Point { x: number; y: number }

const W = 480;
const H = 150;
const PAD = { l: 72, r: 10, t: 10, b: 22 };

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

function frame(title: string, yTop: string, inner: string, xLeft: string, xRight: string): string {
  return `<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(title)}"><title>${esc(title)}</title>`
    + `<line x1="${PAD.l}" y1="${H - PAD.b}" x2="${W - PAD.r}" y2="${H - PAD.b}" stroke="#c4cad4"/>`
    + `<line x1="${PAD.l}" y1="${PAD.t}" x2="${PAD.l}" y2="${H - PAD.b}" stroke="#c4cad4"/>`
    + `<text x="${PAD.l - 6}" y="${PAD.t + 9}" text-anchor="end">${esc(yTop)}</text><text x="${PAD.l - 6}" y="${H - PAD.b}" text-anchor="end">0</text>`
    + `<text x="${PAD.l}" y="${H - 6}">${esc(xLeft)}</text><text x="${W - PAD.r}" y="${H - 6}" text-anchor="end">${esc(xRight)}</text>`
    + inner + '</svg>';
}

/** A line of `points` (x: time in ms), with a dashed horizontal line at `cap` when given. */
export function lineChart(title: string, points: readonly Point[], fmtY: (n: number) => string, fmtX: (n: number) => string, cap?: number): string {
  if (points.length === 0) return `<p class="help">${esc(title)}: no data yet.</p>`;
  const x0 = points[0]!.x;
  const x1 = Math.max(points.at(-1)!.x, x0 + 1);
  const yMax = Math.max(1, cap ?? 0, ...points.map((p) => p.y)) * 1.05;
  const sx = (x: number) => PAD.l + ((x - x0) / (x1 - x0)) * (W - PAD.l - PAD.r);
  const sy = (y: number) => H - PAD.b - (y / yMax) * (H - PAD.t - PAD.b);
  const pts = (points.length === 1 ? [points[0]!, { x: x1, y: points[0]!.y }] : points).map((p) => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(' ');
  const capLine = cap ? `<line x1="${PAD.l}" x2="${W - PAD.r}" y1="${sy(cap).toFixed(1)}" y2="${sy(cap).toFixed(1)}" stroke="#cf222e" stroke-dasharray="4 3"/><text x="${W - PAD.r}" y="${(sy(cap) - 3).toFixed(1)}" text-anchor="end">cap ${esc(fmtY(cap))}</text>` : '';
  const area = `<polygon points="${sx(points[0]!.x).toFixed(1)},${H - PAD.b} ${pts} ${sx(points.length === 1 ? x1 : points.at(-1)!.x).toFixed(1)},${H - PAD.b}" fill="#1f6feb" fill-opacity="0.12"/>`;
  return frame(title, fmtY(yMax / 1.05), `${area}<polyline points="${pts}" fill="none" stroke="#1f6feb" stroke-width="2"/>${capLine}`, fmtX(x0), fmtX(x1));
}

/** One bar per value, oldest first. */
export function barChart(title: string, values: readonly number[], fmtY: (n: number) => string, left: string, right: string): string {
  if (values.length === 0) return `<p class="help">${esc(title)}: no data yet.</p>`;
  const yMax = Math.max(1, ...values);
  const slot = (W - PAD.l - PAD.r) / values.length;
  const bars = values.map((v, i) => {
    const h = (v / yMax) * (H - PAD.t - PAD.b);
    return `<rect x="${(PAD.l + i * slot + slot * 0.15).toFixed(1)}" y="${(H - PAD.b - h).toFixed(1)}" width="${(slot * 0.7).toFixed(1)}" height="${h.toFixed(1)}" fill="#1a7f37" rx="2"/>`;
  }).join('');
  return frame(title, fmtY(yMax), bars, left, right);
}
