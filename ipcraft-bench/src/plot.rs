//! `--plot FILE.svg`: round-trip latency and throughput by transport and
//! message size, on log scales.

use std::path::Path;

use plotters::prelude::*;

use super::{Machine, Row};

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// One line per transport: (size, value) points of `pattern`.
fn series(rows: &[Row], pattern: &str, value: impl Fn(&Row) -> Option<f64>) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut out: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for r in rows.iter().filter(|r| r.pattern == pattern) {
        let Some(v) = value(r) else { continue };
        match out.iter_mut().find(|(t, _)| *t == r.transport) {
            Some((_, pts)) => pts.push((r.size as f64, v)),
            None => out.push((r.transport.clone(), vec![(r.size as f64, v)])),
        }
    }
    out
}

fn range(points: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = points.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        (1.0, 10.0)
    } else {
        (lo / 1.5, hi * 1.5)
    }
}

/// `1.5 µs`, `20 ms`, `2 GB/s`: a value in `unit`s scaled to a readable prefix.
fn human(v: f64, unit: &str) -> String {
    let (scaled, prefix) = match unit {
        "ns" if v >= 1e6 => (v / 1e6, "ms"),
        "ns" if v >= 1e3 => (v / 1e3, "µs"),
        "ns" => (v, "ns"),
        _ if v >= 1e3 => (v / 1e3, "GB/s"),
        _ => (v, "MB/s"),
    };
    if scaled >= 10.0 {
        format!("{scaled:.0} {prefix}")
    } else {
        format!("{scaled:.1} {prefix}")
    }
}

fn panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    unit: &'static str,
    lines: &[(String, Vec<(f64, f64)>)],
) -> Result<(), Box<dyn std::error::Error>> {
    // The legend gets its own strip so it never hides a point.
    let (area, legend) = area.split_horizontally(area.dim_in_pixel().0 - 150);
    let (x0, x1) = range(lines.iter().flat_map(|(_, p)| p.iter().map(|&(x, _)| x)));
    let (y0, y1) = range(lines.iter().flat_map(|(_, p)| p.iter().map(|&(_, y)| y)));
    let mut chart = ChartBuilder::on(&area)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("message size (bytes)")
        .x_label_formatter(&|v| super::human_size(*v as u64))
        .y_label_formatter(&|v| human(*v, unit))
        .label_style(("sans-serif", 14))
        .draw()?;
    for (i, (name, pts)) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut pts = pts.clone();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?;
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
        let y = 60 + 24 * i as i32;
        legend.draw(&PathElement::new(vec![(5, y), (30, y)], color.stroke_width(3)))?;
        legend.draw(&Text::new(name.clone(), (38, y - 8), ("sans-serif", 15)))?;
    }
    Ok(())
}

/// Draws the two panels into an SVG file at `path`.
pub fn draw(path: &Path, rows: &[Row], machine: &Machine) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (1000, 1100)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "ipcraft bench: {} ({} cores), Linux {}",
        machine.cpu, machine.cores, machine.kernel
    );
    let root = root.titled(&title, ("sans-serif", 18))?;
    let (top, bottom) = root.split_vertically(540);
    let latency = series(rows, "pingpong", |r| r.median_ns.map(|v| v as f64));
    panel(&top, "round trip latency, median (lower is better)", "ns", &latency)?;
    let throughput = series(rows, "stream", |r| r.bytes_per_sec.map(|v| v / 1e6));
    panel(&bottom, "stream throughput (higher is better)", "MB/s", &throughput)?;
    root.present()?;
    Ok(())
}
