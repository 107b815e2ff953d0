// Accessible SVG charts (no chart library: two small charts do not need one). Each chart is one image
// with a title and a description that states the numbers; the same numbers are in a data table next
// to it. Colours: dark blue and dark orange, both at least 3:1 against white and apart in lightness.

import { useId } from 'react';

export interface Bar {
  /** Full label (tooltip), e.g. 2026-04-05. */
  label: string;
  /** Axis label, e.g. 5. */
  short: string;
  sign: number;
  auth: number;
}

export const SIGN_COLOUR = '#1d4ed8';
export const AUTH_COLOUR = '#b45309';

/** A round axis maximum and tick step for integer counts. */
function axis(max: number): { top: number; step: number } {
  if (max <= 4) return { top: Math.max(1, max), step: 1 };
  const raw = max / 4;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw) ?? 10 * pow;
  return { top: Math.ceil(max / step) * step, step };
}

export function BarChart({
  title,
  desc,
  bars,
  signLabel,
  authLabel,
  formatNumber,
}: {
  title: string;
  desc: string;
  bars: Bar[];
  signLabel: string;
  authLabel: string;
  formatNumber: (n: number) => string;
}) {
  const id = useId();
  const W = 720;
  const H = 260;
  const m = { left: 56, right: 12, top: 28, bottom: 36 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const max = Math.max(0, ...bars.map((b) => b.sign + b.auth));
  const { top, step } = axis(max);
  const y = (v: number) => m.top + ph - (v / top) * ph;
  const band = pw / Math.max(1, bars.length);
  const bw = Math.max(2, band * 0.7);
  const every = Math.ceil(bars.length / 16);
  const ticks: number[] = [];
  for (let v = 0; v <= top; v += step) ticks.push(v);

  return (
    <figure className="chart">
      <svg
        viewBox={`0 0 ${W} ${H}`}
        role="img"
        aria-labelledby={`${id}-t ${id}-d`}
        preserveAspectRatio="xMidYMid meet"
      >
        <title id={`${id}-t`}>{title}</title>
        <desc id={`${id}-d`}>{desc}</desc>
        <g className="legend" transform={`translate(${m.left}, 12)`}>
          <rect width="12" height="12" y="-10" fill={SIGN_COLOUR} />
          <text x="18">{signLabel}</text>
          <rect x="160" width="12" height="12" y="-10" fill={AUTH_COLOUR} />
          <text x="178">{authLabel}</text>
        </g>
        {ticks.map((v) => (
          <g key={v}>
            <line x1={m.left} x2={W - m.right} y1={y(v)} y2={y(v)} className="grid" />
            <text x={m.left - 6} y={y(v) + 4} textAnchor="end" className="tick">
              {formatNumber(v)}
            </text>
          </g>
        ))}
        {bars.map((b, n) => {
          const x = m.left + n * band + (band - bw) / 2;
          return (
            <g key={b.label}>
              <title>{`${b.label}: ${signLabel} ${b.sign}, ${authLabel} ${b.auth}`}</title>
              {b.sign > 0 ? (
                <rect x={x} y={y(b.sign)} width={bw} height={y(0) - y(b.sign)} fill={SIGN_COLOUR} />
              ) : null}
              {b.auth > 0 ? (
                <rect
                  x={x}
                  y={y(b.sign + b.auth)}
                  width={bw}
                  height={y(b.sign) - y(b.sign + b.auth)}
                  fill={AUTH_COLOUR}
                />
              ) : null}
              {n % every === 0 ? (
                <text x={x + bw / 2} y={H - m.bottom + 16} textAnchor="middle" className="tick">
                  {b.short}
                </text>
              ) : null}
            </g>
          );
        })}
        <line x1={m.left} x2={W - m.right} y1={y(0)} y2={y(0)} className="axis" />
      </svg>
    </figure>
  );
}

/** Cumulative issuance against the design capacity, as one horizontal bar. */
export function CapacityGauge({ title, desc, ratio }: { title: string; desc: string; ratio: number }) {
  const id = useId();
  const W = 720;
  const fill = ratio > 0 ? Math.max(2, Math.min(1, ratio) * (W - 2)) : 0;
  return (
    <figure className="chart gauge">
      <svg viewBox={`0 0 ${W} 48`} role="img" aria-labelledby={`${id}-t ${id}-d`}>
        <title id={`${id}-t`}>{title}</title>
        <desc id={`${id}-d`}>{desc}</desc>
        <rect x="1" y="8" width={W - 2} height="24" className="gauge-track" />
        <rect x="1" y="8" width={fill} height="24" fill={SIGN_COLOUR} />
      </svg>
      <figcaption>{desc}</figcaption>
    </figure>
  );
}
