// chart.js — a small line chart on a <canvas>: a rolling window of samples
// for a few series, drawn crisp at any device pixel ratio, resized with its
// element. No dependencies.

export class LineChart {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{name: string, color: string}[]} series  colours as CSS custom
   *        properties (e.g. '--events') or plain colours
   * @param {{capacity?: number}} options  samples kept (default 90)
   */
  constructor(canvas, series, { capacity = 90 } = {}) {
    this.canvas = canvas;
    this.series = series.map((s) => ({ ...s, values: [] }));
    this.capacity = capacity;
    this.ctx = canvas.getContext('2d');
    this.pending = false;
    if ('ResizeObserver' in window) {
      new ResizeObserver(() => this.draw()).observe(canvas);
    } else {
      window.addEventListener('resize', () => this.draw());
    }
    const mq = window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)');
    if (mq && mq.addEventListener) mq.addEventListener('change', () => this.draw());
  }

  /** Appends one sample per series (numbers; null for "no data"). */
  push(values) {
    this.series.forEach((s, i) => {
      const v = values[i];
      s.values.push(typeof v === 'number' && Number.isFinite(v) ? v : null);
      if (s.values.length > this.capacity) s.values.shift();
    });
    this.draw();
  }

  clear() {
    for (const s of this.series) s.values = [];
    this.draw();
  }

  draw() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render();
    });
  }

  color(c) {
    return c.startsWith('--') ? getComputedStyle(this.canvas).getPropertyValue(c).trim() || '#888' : c;
  }

  render() {
    const { canvas, ctx } = this;
    const cssW = canvas.clientWidth;
    const cssH = canvas.clientHeight;
    if (!cssW || !cssH) return;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.round(cssW * dpr);
    const h = Math.round(cssH * dpr);
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);

    const muted = this.color('--muted');
    const grid = this.color('--border');
    const font = `11px ${getComputedStyle(canvas).fontFamily || 'sans-serif'}`;
    let max = 0;
    for (const s of this.series) for (const v of s.values) if (v !== null && v > max) max = v;
    const top = niceCeil(max);
    const pad = { l: 34, r: 6, t: 8, b: 16 };
    const plotW = cssW - pad.l - pad.r;
    const plotH = cssH - pad.t - pad.b;

    // grid and y labels: 0, half, top
    ctx.font = font;
    ctx.textBaseline = 'middle';
    ctx.textAlign = 'right';
    ctx.lineWidth = 1;
    for (const f of [0, 0.5, 1]) {
      const y = Math.round(pad.t + plotH * (1 - f)) + 0.5;
      ctx.strokeStyle = grid;
      ctx.beginPath();
      ctx.moveTo(pad.l, y);
      ctx.lineTo(cssW - pad.r, y);
      ctx.stroke();
      ctx.fillStyle = muted;
      ctx.fillText(fmt(top * f), pad.l - 6, y);
    }
    ctx.textAlign = 'left';
    ctx.textBaseline = 'alphabetic';
    ctx.fillText('now', cssW - pad.r - 20, cssH - 3);

    const step = plotW / Math.max(1, this.capacity - 1);
    for (const s of this.series) {
      const n = s.values.length;
      if (n === 0) continue;
      const x0 = pad.l + plotW - (n - 1) * step;
      const color = this.color(s.color);
      // area, faint
      ctx.beginPath();
      let started = false;
      let firstX = 0;
      let lastX = 0;
      s.values.forEach((v, i) => {
        if (v === null) return;
        const x = x0 + i * step;
        const y = pad.t + plotH * (1 - v / top);
        if (!started) {
          ctx.moveTo(x, y);
          firstX = x;
          started = true;
        } else {
          ctx.lineTo(x, y);
        }
        lastX = x;
      });
      if (!started) continue;
      ctx.strokeStyle = color;
      ctx.lineWidth = 2;
      ctx.lineJoin = 'round';
      ctx.stroke();
      ctx.lineTo(lastX, pad.t + plotH);
      ctx.lineTo(firstX, pad.t + plotH);
      ctx.closePath();
      ctx.globalAlpha = 0.12;
      ctx.fillStyle = color;
      ctx.fill();
      ctx.globalAlpha = 1;
      // the latest value, as a dot (a single sample has no line yet)
      const last = s.values[n - 1];
      if (last !== null) {
        ctx.beginPath();
        ctx.arc(x0 + (n - 1) * step, pad.t + plotH * (1 - last / top), 3, 0, 2 * Math.PI);
        ctx.fill();
      }
    }
  }
}

// The smallest of 1, 2, 2.5, 5 × 10^k at or above v (and at least 1).
function niceCeil(v) {
  if (!(v > 1)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmt(v) {
  if (v >= 1000) return (v / 1000).toFixed(v % 1000 ? 1 : 0) + 'k';
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}
