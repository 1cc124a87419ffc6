//! The import benchmark's two commands: `orders` writes a generated data set of past orders
//! (the import's scale test uses the same generator) as a JSON Lines file for
//! `identity-api import` and as a CSV file of the same rows for PostgreSQL's `COPY` into a
//! table shaped like `contact`; `import-chart` draws the measured rates.

use std::error::Error;
use std::io::Write;
use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Deserialize;

/// Writes `count` generated orders to `jsonl` (for the import) and `csv` (for `COPY contact
/// (email, phone_number, created_at, link_precedence)`, each row a primary).
pub fn write_orders(count: usize, seed: u64, jsonl: &Path, csv: &Path) -> Result<(), String> {
    let orders = identity_test_support::orders(count, seed);
    let write = |path: &Path, lines: &mut dyn Iterator<Item = String>| -> Result<(), String> {
        let file = std::fs::File::create(path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let mut out = std::io::BufWriter::new(file);
        for line in lines {
            writeln!(out, "{line}").map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        out.flush()
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    write(
        jsonl,
        &mut orders.iter().map(identity_test_support::Order::to_jsonl),
    )?;
    write(
        csv,
        &mut orders.iter().map(|o| {
            format!(
                "{},{},{},primary",
                o.email.as_deref().unwrap_or(""),
                o.phone.as_deref().unwrap_or(""),
                o.created_at
            )
        }),
    )
}

/// One measurement of `scripts/bench-import.sh`.
#[derive(Debug, Deserialize)]
struct Measured {
    /// `per-record`, `set-based` or `copy`.
    method: String,
    /// Records per transaction (0 for COPY).
    #[serde(default)]
    batch: u64,
    records: f64,
    seconds: f64,
}

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 360;
const FONT: &str = "sans-serif";

/// Draws the rates of `input` (JSON Lines of [`Measured`]) as horizontal bars, each with
/// its rate and its share of COPY's, to `output` (SVG).
pub fn write_chart(input: &Path, output: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(input)
        .map_err(|e| format!("cannot read {}: {e}", input.display()))?;
    let measured: Vec<Measured> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("{}: {e}", input.display())))
        .collect::<Result<_, _>>()?;
    let mut svg = String::new();
    draw(&measured, &mut svg).map_err(|e| format!("cannot draw the chart: {e}"))?;
    std::fs::write(output, svg).map_err(|e| format!("cannot write {}: {e}", output.display()))
}

fn draw(measured: &[Measured], svg: &mut String) -> Result<(), Box<dyn Error>> {
    let rate = |m: &Measured| m.records / m.seconds.max(1e-9);
    let copy = measured
        .iter()
        .find(|m| m.method == "copy")
        .map(rate)
        .ok_or("no COPY measurement")?;
    let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(44);
    title.draw(&Text::new(
        "Importing past orders into PostgreSQL, rows/s: identity-api import against COPY into a table shaped like contact (same run)",
        (12, 14),
        (FONT, 15).into_font(),
    ))?;
    let labels: Vec<String> = measured
        .iter()
        .map(|m| match m.method.as_str() {
            "per-record" => format!("import, record by record, batch {} (before)", m.batch),
            "set-based" => format!("import, set-based, batch {} (after)", m.batch),
            "copy" => "COPY (no rules, no history)".to_owned(),
            other => other.to_owned(),
        })
        .collect();
    let top = measured.iter().map(rate).fold(0.0_f64, f64::max) * 1.25;
    let n = measured.len();
    let mut chart = ChartBuilder::on(&body)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(300)
        .build_cartesian_2d(0.0..top, (0..n.saturating_sub(1)).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(WHITE)
        .x_labels(8)
        .x_label_formatter(&|v: &f64| format!("{v:.0}"))
        .x_desc("rows per second")
        .y_label_formatter(&|v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .label_style((FONT, 13))
        .draw()?;
    let colors = |method: &str| match method {
        "copy" => RGBColor(180, 180, 180),
        "per-record" => RGBColor(158, 202, 225),
        _ => RGBColor(31, 119, 180),
    };
    chart.draw_series(measured.iter().enumerate().map(|(i, m)| {
        let mut bar = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(i)),
                (rate(m), SegmentValue::Exact(i + 1)),
            ],
            colors(&m.method).filled(),
        );
        bar.set_margin(8, 8, 0, 0);
        bar
    }))?;
    let style = TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    chart.draw_series(measured.iter().enumerate().map(|(i, m)| {
        let share = rate(m) / copy;
        Text::new(
            format!("{:.0}/s ({:.2} of COPY)", rate(m), share),
            (rate(m) + top * 0.01, SegmentValue::CenterOf(i)),
            style.clone(),
        )
    }))?;
    root.present()?;
    Ok(())
}
