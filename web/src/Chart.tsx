// Accessible SVG charts (no chart library: two small charts do not need one). Each chart is one image
// with a title and a description that states the numbers; the same numbers are in a data table next
// to it. Colours: dark blue, dark orange and dark slate, each at least 3:1 against white and apart in
// hue for colour-blind readers; stacked segments are parted by a white line.

import { useId } from 'react';

/** One stacked bar: a value per series, in the order of `series`. */
export interface Bar {
  /** Full label (tooltip), e.g. 2026-04-05. */
  label: string;
  /** Axis label, e.g. 5. */
  short: string;
  values: number[];
}

export interface Series {
  label: string;
  colour: string;
}

export const SIGN_COLOUR = '#1d4ed8';
export const AUTH_COLOUR = '#b45309';
export const THIRD_COLOUR = '#374151';
export const SERIES_COLOURS = [SIGN_COLOUR, AUTH_COLOUR, THIRD_COLOUR] as const;

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
  series,
  formatNumber,
}: {
  title: string;
  desc: string;
  bars: Bar[];
  series: Series[];
  formatNumber: (n: number) => string;
}) {
  const id = useId();
  const W = 720;
  const H = 260;
  const m = { left: 56, right: 12, top: 28, bottom: 36 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const sum = (b: Bar) => b.values.reduce((a, v) => a + v, 0);
  const max = Math.max(0, ...bars.map(sum));
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
          {series.map((s, n) => (
            <g key={s.label} transform={`translate(${n * 190}, 0)`}>
              <rect width="12" height="12" y="-10" fill={s.colour} />
              <text x="18">{s.label}</text>
            </g>
          ))}
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
          let below = 0;
          return (
            <g key={b.label}>
              <title>{`${b.label}: ${series.map((s, k) => `${s.label} ${formatNumber(b.values[k] ?? 0)}`).join(', ')}`}</title>
              {series.map((s, k) => {
                const v = b.values[k] ?? 0;
                const from = below;
                below += v;
                return v > 0 ? (
                  <rect
                    key={s.label}
                    x={x}
                    y={y(from + v)}
                    width={bw}
                    height={y(from) - y(from + v)}
                    fill={s.colour}
                    className="segment"
                  />
                ) : null;
              })}
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
