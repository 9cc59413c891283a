//! `--plot FILE.svg`: round trip and throughput by transport and message
//! size, on log scales, with the hardware floor of the same run drawn as a
//! reference on both charts. Every transport has its own colour and marker,
//! and the size axis is labelled with the sizes measured.

use std::path::Path;

use plotters::coord::combinators::BindKeyPoints;
use plotters::prelude::*;

use super::report::{self, Report, Row};

/// Distinct colours (Tableau 10, then darker variants), one per transport.
const COLORS: [RGBColor; 14] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 128),
    RGBColor(128, 0, 0),
    RGBColor(0, 100, 0),
    RGBColor(90, 60, 0),
];

/// The colour and marker of transport number `i`.
fn style(i: usize) -> (RGBColor, usize) {
    (COLORS[i % COLORS.len()], i % 4)
}

/// One line per transport: (size, value) points of `pattern`, sorted.
fn series(rows: &[Row], pattern: &str, value: impl Fn(&Row) -> Option<f64>) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut out: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for r in rows.iter().filter(|r| r.pattern == pattern) {
        let Some(v) = value(r) else { continue };
        match out.iter_mut().find(|(t, _)| *t == r.transport) {
            Some((_, pts)) => pts.push((r.size as f64, v)),
            None => out.push((r.transport.clone(), vec![(r.size as f64, v)])),
        }
    }
    for (_, pts) in &mut out {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

fn range(points: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = points.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        (1.0, 10.0)
    } else {
        (lo / 1.6, hi * 1.6)
    }
}

/// What one chart shows.
struct Panel<'a> {
    title: &'a str,
    y_desc: &'a str,
    label: fn(f64) -> String,
    lines: Vec<(String, Vec<(f64, f64)>)>,
    /// The floor: a named line through these points (one point: level).
    floor: Option<(&'a str, Vec<(f64, f64)>)>,
}

fn panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    p: &Panel<'_>,
    sizes: &[u64],
    order: &[String],
) -> Result<(), Box<dyn std::error::Error>> {
    // The legend gets its own strip so it never hides a point.
    let (area, legend) = area.split_horizontally(area.dim_in_pixel().0 - 210);
    let xs = sizes.iter().map(|&s| s as f64);
    let (x0, x1) = range(xs.clone());
    let floor_ys = p.floor.iter().flat_map(|(_, pts)| pts.iter().map(|&(_, y)| y));
    let (y0, y1) = range(
        p.lines
            .iter()
            .flat_map(|(_, pts)| pts.iter().map(|&(_, y)| y))
            .chain(floor_ys),
    );
    let x_axis = (x0..x1).log_scale().with_key_points(xs.collect::<Vec<_>>());
    let mut chart = ChartBuilder::on(&area)
        .caption(p.title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(85)
        .build_cartesian_2d(x_axis, (y0..y1).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("message size")
        .y_desc(p.y_desc)
        .x_label_formatter(&|v| report::size(v.round() as u64))
        .y_label_formatter(&|v| (p.label)(*v))
        .label_style(("sans-serif", 14))
        .draw()?;
    let mut row = 0;
    let mut legend_entry =
        |name: &str, color: RGBColor, kind: Option<usize>, dashed: bool| -> Result<(), Box<dyn std::error::Error>> {
            let y = 40 + 24 * row;
            row += 1;
            if dashed {
                for x in (5..30).step_by(8) {
                    legend.draw(&PathElement::new(vec![(x, y), (x + 4, y)], color.stroke_width(2)))?;
                }
            } else {
                legend.draw(&PathElement::new(vec![(5, y), (30, y)], color.stroke_width(2)))?;
            }
            match kind {
                Some(0) => legend.draw(&Circle::new((17, y), 5, color.filled()))?,
                Some(1) => legend.draw(&TriangleMarker::new((17, y), 6, color.filled()))?,
                Some(2) => legend.draw(&Cross::new((17, y), 5, color.stroke_width(2)))?,
                Some(_) => legend.draw(&Rectangle::new([(13, y - 4), (21, y + 4)], color.filled()))?,
                None => {}
            }
            legend.draw(&Text::new(name.to_owned(), (38, y - 8), ("sans-serif", 14)))?;
            Ok(())
        };
    if let Some((name, pts)) = &p.floor {
        let pts = if pts.len() == 1 {
            vec![(x0, pts[0].1), (x1, pts[0].1)]
        } else {
            pts.clone()
        };
        chart.draw_series(DashedLineSeries::new(pts, 6, 4, BLACK.stroke_width(2)))?;
        legend_entry(name, BLACK, None, true)?;
    }
    for (name, pts) in &p.lines {
        let i = order.iter().position(|t| t == name).unwrap_or(0);
        let (color, kind) = style(i);
        chart.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?;
        let pts = pts.iter().copied();
        match kind {
            0 => chart.draw_series(pts.map(|at| Circle::new(at, 5, color.filled())))?,
            1 => chart.draw_series(pts.map(|at| TriangleMarker::new(at, 6, color.filled())))?,
            2 => chart.draw_series(pts.map(|at| Cross::new(at, 5, color.stroke_width(2))))?,
            _ => chart
                .draw_series(pts.map(|at| EmptyElement::at(at) + Rectangle::new([(-4, -4), (4, 4)], color.filled())))?,
        };
        legend_entry(name, color, Some(kind), false)?;
    }
    Ok(())
}

/// Draws the two charts into an SVG file at `path`.
pub fn draw(path: &Path, report: &Report) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (1100, 1150)).into_drawing_area();
    root.fill(&WHITE)?;
    let m = &report.machine;
    let title = format!(
        "ipcraft bench: {} ({} cores), Linux {} — two processes, {}",
        m.cpu, m.cores, m.kernel, report.method.cpus
    );
    let root = root.titled(&title, ("sans-serif", 16))?;
    let (top, bottom) = root.split_vertically(560);
    let mut sizes: Vec<u64> = report.results.iter().map(|r| r.size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let mut order: Vec<String> = Vec::new();
    for r in &report.results {
        if !order.contains(&r.transport) {
            order.push(r.transport.clone());
        }
    }
    let latency = Panel {
        title: "round trip, median — lower is better (one-way is half)",
        y_desc: "round trip",
        label: |v| report::ns(v),
        lines: series(&report.results, "pingpong", |r| r.median_ns.map(|v| v as f64)),
        floor: report
            .floor
            .as_ref()
            .map(|f| ("floor: one cache line", vec![(0.0, f.cacheline_rtt_ns as f64)])),
    };
    panel(&top, &latency, &sizes, &order)?;
    let ring_floor: Vec<(f64, f64)> = report
        .floor
        .as_ref()
        .map(|f| {
            sizes
                .iter()
                .filter_map(|&s| f.bare_ring(s).map(|r| (s as f64, r)))
                .collect()
        })
        .unwrap_or_default();
    let throughput = Panel {
        title: "stream throughput, one way — higher is better",
        y_desc: "bytes per second",
        label: report::rate,
        lines: series(&report.results, "stream", |r| r.bytes_per_sec),
        floor: (!ring_floor.is_empty()).then_some(("floor: a bare ring", ring_floor)),
    };
    panel(&bottom, &throughput, &sizes, &order)?;
    root.present()?;
    Ok(())
}
