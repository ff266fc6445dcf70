//! The cost curve: end-to-end throughput as the plugins matching every
//! event grow (1, 10, 50 copies of the trivial plugin) and as events per
//! request grow (1 … 1024), plotted to a PNG.

use crate::load;
use crate::process::{Gridlet, Paths, PluginCopy};
use crate::serve::TRIVIAL_MANIFEST;
use anyhow::{Context, Result};
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

const PLUGINS: [usize; 3] = [1, 10, 50];
const BATCHES: [usize; 5] = [1, 16, 64, 256, 1024];
const SENDERS: usize = 4;

/// One point of the curve.
struct Point {
    plugins: usize,
    batch: usize,
    /// Events acknowledged and then delivered to every plugin, per second.
    events: f64,
}

async fn point(paths: &Paths, plugins: usize, batch: usize, deliveries: usize) -> Result<Point> {
    let wasm = paths.plugin("failed-run-alert");
    let copies: Vec<PluginCopy> = (0..plugins)
        .map(|i| PluginCopy {
            name: format!("trivial-{i}"),
            wasm: &wasm,
            manifest: TRIVIAL_MANIFEST,
        })
        .collect();
    let gridlet = Gridlet::start(paths, &copies, true).await?;
    let requests = (deliveries / plugins).div_ceil(batch).max(SENDERS);
    let run = format!("p{plugins}b{batch}");
    let load = load::send(&gridlet.url, &run, batch, requests, SENDERS).await;
    anyhow::ensure!(load.failed == 0, "{run}: {} requests refused", load.failed);
    let drain = gridlet.drain().await;
    Ok(Point {
        plugins,
        batch,
        events: (requests * batch) as f64 / (load.elapsed + drain).as_secs_f64(),
    })
}

/// The section's Markdown; the plot goes to `png`.
pub async fn run(paths: &Paths, quick: bool, png: &Path) -> Result<String> {
    let deliveries = if quick { 8_000 } else { 40_000 };
    let mut points = Vec::new();
    for plugins in PLUGINS {
        for batch in BATCHES {
            points.push(point(paths, plugins, batch, deliveries).await?);
        }
    }
    let mut md = format!(
        "{SENDERS} concurrent senders (this harness, a second process), ~{deliveries} deliveries \
         per point, fsync on; events/s counts events acknowledged *and* delivered to every \
         matching plugin.\n\n| plugins matching | "
    );
    for b in BATCHES {
        let _ = write!(md, "batch {b} | ");
    }
    md.push_str("\n|---:|");
    md.push_str(&"---:|".repeat(BATCHES.len()));
    md.push('\n');
    for plugins in PLUGINS {
        let _ = write!(md, "| {plugins} | ");
        for p in points.iter().filter(|p| p.plugins == plugins) {
            let _ = write!(
                md,
                "{:.0} ev/s ({:.0} deliveries/s) | ",
                p.events,
                p.events * plugins as f64
            );
        }
        md.push('\n');
    }
    match plot(&points, png) {
        Ok(()) => {
            let _ = writeln!(
                md,
                "\n![throughput by batch size and plugins](./{})",
                png.file_name().and_then(|n| n.to_str()).unwrap_or("")
            );
        }
        Err(e) => {
            let _ = writeln!(md, "\n(no plot: {e})");
        }
    }
    Ok(md)
}

/// The font plotters draws text with (Debian's fonts-dejavu-core).
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

fn plot(points: &[Point], png: &Path) -> Result<()> {
    let font = std::fs::read(FONT).with_context(|| format!("{FONT} (fonts-dejavu-core)"))?;
    let font: &'static [u8] = Box::leak(font.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| anyhow::anyhow!("cannot read {FONT}"))?;
    let root = BitMapBackend::new(png, (1100, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(550);
    let charts = [
        (left, "events/s end to end", 1.0),
        (right, "deliveries/s (events × plugins)", 0.0),
    ];
    for (area, title, per_event) in charts {
        let value = |p: &Point| {
            if per_event > 0.0 {
                p.events
            } else {
                p.events * p.plugins as f64
            }
        };
        let top = points.iter().map(value).fold(0.0, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(&area)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((1f64..1024f64).log_scale(), 0f64..top.max(1.0))?;
        chart
            .configure_mesh()
            .x_desc("events per request")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{:.0}k", y / 1000.0))
            .draw()?;
        for (i, plugins) in PLUGINS.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let series: Vec<(f64, f64)> = points
                .iter()
                .filter(|p| p.plugins == *plugins)
                .map(|p| (p.batch as f64, value(p)))
                .collect();
            chart
                .draw_series(LineSeries::new(series.clone(), color.stroke_width(2)))?
                .label(format!("{plugins} plugin(s)"))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
            chart.draw_series(
                series
                    .into_iter()
                    .map(|xy| Circle::new(xy, 3, color.filled())),
            )?;
        }
        // One legend, where the left panel is empty (its lines start low).
        if per_event > 0.0 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        }
    }
    root.present()?;
    Ok(())
}
