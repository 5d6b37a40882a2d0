/**
 * Charts for the benchmarks, written as SVG files that a person opens beside the printed table: a Vega-Lite
 * specification compiled with vega-lite and rendered headless by vega (no canvas, no browser).
 */
import { writeFile } from 'node:fs/promises';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export interface Series {
  name: string;
  points: ReadonlyArray<readonly [number, number]>;
}

export interface LineChart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly Series[];
  /** Draw the points as well as the lines (default true). */
  points?: boolean;
  /** A logarithmic x or y axis. */
  logX?: boolean;
  logY?: boolean;
}

/** Any Vega-Lite specification, rendered to SVG text. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** One line per series, x against y. */
export function lineChartSpec(chart: LineChart): TopLevelSpec {
  const values = chart.series.flatMap((s) => s.points.map(([x, y]) => ({ series: s.name, x, y })));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: chart.title,
    width: 560,
    height: 320,
    background: 'white',
    data: { values },
    mark: { type: 'line', point: chart.points ?? true },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: chart.xLabel, scale: chart.logX ? { type: 'log' } : {} },
      y: {
        field: 'y',
        type: 'quantitative',
        title: chart.yLabel,
        scale: chart.logY ? { type: 'log' } : { zero: false },
      },
      color: { field: 'series', type: 'nominal', title: null },
    },
  };
}

/** Renders `chart` and writes it to `file` (an .svg path); returns the path. */
export async function writeLineChart(file: string, chart: LineChart): Promise<string> {
  await writeFile(file, await renderSvg(lineChartSpec(chart)));
  return file;
}
