//! `chart`: a results file drawn as one SVG. The first panel is the service's closed-loop
//! throughput next to the PostgreSQL ceiling, for each size and workload; then one panel of
//! latency percentiles for each mode the file has (closed loop, open loop).
//!
//! Text is written as SVG `<text>` for the viewer to lay out with its own fonts: plotters only
//! estimates its size, so nothing here needs a font file.

use std::error::Error;
use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::measurement::{self, Mode, Record, Service};

const WIDTH: u32 = 1200;
const TITLE_HEIGHT: u32 = 44;
const PANEL_HEIGHT: u32 = 400;
/// Room on the right of each panel for its legend, so that no legend covers a bar.
const LEGEND_WIDTH: u32 = 150;
const FONT: &str = "sans-serif";

const SERVICE: RGBColor = RGBColor(31, 119, 180);
const CEILING: RGBColor = RGBColor(180, 180, 180);
const PERCENTILES: [(&str, RGBColor); 4] = [
    ("p50", RGBColor(158, 202, 225)),
    ("p90", RGBColor(66, 146, 198)),
    ("p99", RGBColor(8, 81, 156)),
    ("p99.9", RGBColor(8, 38, 84)),
];

const THROUGHPUT: &str = "Throughput, closed loop: the service's requests/s (% of the ceiling) \
    against PostgreSQL's ceiling, pgbench's tps for the same SQL at the same concurrency";
const OPEN_LATENCY: &str =
    "Latency, open loop (a fixed rate; measured from each request's intended send time)";

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
type Drawn = Result<(), Box<dyn Error>>;

/// Read `input` (a results file) and write the chart to `output`.
pub fn write_svg(input: &Path, output: &Path) -> Result<(), String> {
    let svg = render(&measurement::read(input)?)?;
    std::fs::write(output, svg).map_err(|e| format!("cannot write {}: {e}", output.display()))
}

/// One group of bars.
struct Group {
    label: String,
    service: Service,
    /// The ceiling measured for the same size and workload (the last in the file), if any.
    ceiling: Option<f64>,
}

fn render(records: &[Record]) -> Result<String, String> {
    let groups: Vec<Group> = records
        .iter()
        .filter_map(|record| match record {
            Record::Service(service) => Some(service),
            Record::Ceiling(_) => None,
        })
        .map(|service| Group {
            label: group_label(service),
            service: service.clone(),
            ceiling: records.iter().rev().find_map(|record| match record {
                Record::Ceiling(c)
                    if c.contacts == service.contacts && c.workload == service.workload =>
                {
                    Some(c.tps)
                }
                _ => None,
            }),
        })
        .collect();
    if groups.is_empty() {
        return Err("the results file has no service measurement to draw".to_owned());
    }
    let (closed, open): (Vec<&Group>, Vec<&Group>) = groups
        .iter()
        .partition(|group| group.service.mode == Mode::Closed);
    let panels = 2 * u32::from(!closed.is_empty()) + u32::from(!open.is_empty());
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, TITLE_HEIGHT + PANEL_HEIGHT * panels))
            .into_drawing_area();
        draw(&root, panels, &closed, &open).map_err(|e| format!("cannot draw the chart: {e}"))?;
    }
    Ok(svg)
}

/// The title, then throughput and latency of the closed-loop runs, then latency of the open ones.
fn draw(root: &Area, panels: u32, closed: &[&Group], open: &[&Group]) -> Drawn {
    root.fill(&WHITE)?;
    let body = root.titled("identity-api benchmark: POST /identify", (FONT, 22))?;
    let mut areas = body.split_evenly((panels as usize, 1)).into_iter();
    if !closed.is_empty() {
        if let Some(area) = areas.next() {
            throughput(&area, closed)?;
        }
        if let Some(area) = areas.next() {
            let clients = same(closed.iter().map(|g| g.service.concurrency))
                .map_or_else(String::new, |n| format!("{n} clients, "));
            let caption =
                format!("Latency, closed loop ({clients}as fast as it answers: includes queueing)");
            latency(&area, &caption, closed)?;
        }
    }
    if let Some(area) = areas.next() {
        latency(&area, OPEN_LATENCY, open)?;
    }
    root.present()?;
    Ok(())
}

/// The value all items share, if they share one.
fn same<T: PartialEq>(mut items: impl Iterator<Item = T>) -> Option<T> {
    let first = items.next()?;
    items.all(|item| item == first).then_some(first)
}

fn group_label(service: &Service) -> String {
    let contacts = match service.contacts {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    };
    let mut label = format!("{}, {contacts} contacts", service.workload);
    if let Mode::Open { rate } = service.mode {
        label += &format!(", {rate:.0}/s");
    }
    // Failed requests count in the rate and the percentiles: say so where the bars are.
    if service.errors > 0 {
        label += &format!(", {} errors", service.errors);
    }
    label
}

/// A latency in milliseconds, to two or three significant digits.
fn ms(value: f64) -> String {
    if value < 1.0 {
        format!("{value:.2}")
    } else if value < 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

/// The x axis: group `i` spans `i - 0.5 .. i + 0.5`, so that its label sits on the tick at `i`.
fn x_axis(groups: usize) -> std::ops::Range<f64> {
    -0.5..groups as f64 - 0.5
}

/// The label of the group whose middle is at `x`, none between groups.
fn label_at(groups: &[&Group], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() > 0.01 || i < 0.0 {
        return String::new();
    }
    groups
        .get(i as usize)
        .map_or_else(String::new, |group| group.label.clone())
}

/// The style of a value written just above its bar.
fn value_style(size: f64) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom))
}

/// A legend in the right-hand margin of a panel.
fn legend(area: &Area, entries: &[(&str, RGBColor)]) -> Drawn {
    let text = TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, (name, colour)) in entries.iter().enumerate() {
        let y = 50 + 22 * i as i32;
        area.draw(&Rectangle::new([(8, y - 7), (22, y + 7)], colour.filled()))?;
        area.draw(&Text::new(*name, (30, y), text.clone()))?;
    }
    Ok(())
}

fn throughput(area: &Area, groups: &[&Group]) -> Drawn {
    let (plot, margin) = area.split_horizontally(WIDTH - LEGEND_WIDTH);
    let top = groups
        .iter()
        .map(|g| g.service.req_s.max(g.ceiling.unwrap_or(0.0)))
        .fold(1.0, f64::max)
        * 1.12;
    let mut chart = ChartBuilder::on(&plot)
        .caption(THROUGHPUT, (FONT, 15))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(x_axis(groups.len()), 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len())
        .x_label_formatter(&|x| label_at(groups, *x))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .max_light_lines(1)
        .y_desc("per second")
        .label_style((FONT, 12))
        .draw()?;
    let at = |i: usize, offset: f64| i as f64 - 0.5 + offset;
    chart.draw_series(groups.iter().enumerate().map(|(i, g)| {
        Rectangle::new(
            [(at(i, 0.12), 0.0), (at(i, 0.49), g.service.req_s)],
            SERVICE.filled(),
        )
    }))?;
    chart.draw_series(groups.iter().enumerate().filter_map(|(i, g)| {
        let tps = g.ceiling?;
        Some(Rectangle::new(
            [(at(i, 0.51), 0.0), (at(i, 0.88), tps)],
            CEILING.filled(),
        ))
    }))?;
    let style = value_style(12.0);
    let label = |text: String, at: (f64, f64)| {
        EmptyElement::at(at) + Text::new(text, (0, -3), style.clone())
    };
    chart.draw_series(groups.iter().enumerate().map(|(i, g)| {
        let req_s = g.service.req_s;
        let text = match g.ceiling {
            Some(tps) => format!("{req_s:.0} ({:.0}%)", 100.0 * req_s / tps),
            None => format!("{req_s:.0}"),
        };
        label(text, (at(i, 0.305), req_s))
    }))?;
    chart.draw_series(groups.iter().enumerate().filter_map(|(i, g)| {
        let tps = g.ceiling?;
        Some(label(format!("{tps:.0}"), (at(i, 0.695), tps)))
    }))?;
    legend(
        &margin,
        &[("service req/s", SERVICE), ("ceiling tps", CEILING)],
    )
}

fn latency(area: &Area, caption: &str, groups: &[&Group]) -> Drawn {
    let (plot, margin) = area.split_horizontally(WIDTH - LEGEND_WIDTH);
    let values = |g: &Group| {
        let s = &g.service;
        [s.p50_ms, s.p90_ms, s.p99_ms, s.p999_ms]
    };
    let all = || groups.iter().flat_map(|g| values(g));
    let smallest = all().fold(f64::INFINITY, f64::min).max(0.001);
    let largest = all().fold(0.0, f64::max).max(smallest);
    // Whole decades, with room above the tallest bar for its label.
    let bottom = 10f64.powf(smallest.log10().floor());
    let top = 10f64.powf((largest * 2.0).log10().ceil());
    let mut chart = ChartBuilder::on(&plot)
        .caption(caption, (FONT, 15))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(70)
        // A hair below the bottom decade, which plotters would otherwise leave without a label.
        .build_cartesian_2d(x_axis(groups.len()), (bottom * 0.999..top).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len())
        .x_label_formatter(&|x| label_at(groups, *x))
        .y_label_formatter(&|y| ms(*y))
        .y_desc("milliseconds (log scale)")
        .label_style((FONT, 12))
        .draw()?;
    let width = 0.76 / PERCENTILES.len() as f64;
    let left = |i: usize, p: usize| i as f64 - 0.38 + width * p as f64;
    for (p, (_, colour)) in PERCENTILES.iter().enumerate() {
        chart.draw_series(groups.iter().enumerate().map(|(i, g)| {
            Rectangle::new(
                [
                    (left(i, p) + 0.005, bottom),
                    (left(i, p) + width - 0.005, values(g)[p]),
                ],
                colour.filled(),
            )
        }))?;
    }
    let style = value_style(11.0);
    chart.draw_series(groups.iter().enumerate().flat_map(|(i, g)| {
        let style = style.clone();
        values(g).into_iter().enumerate().map(move |(p, value)| {
            EmptyElement::at((left(i, p) + width / 2.0, value))
                + Text::new(ms(value), (0, -3), style.clone())
        })
    }))?;
    legend(&margin, &PERCENTILES)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A results file as `scripts/bench.sh` leaves it: one size, a ceiling and a closed-loop
    /// run of each workload, an open-loop run of one.
    const RESULTS: &str = r#"{"kind":"ceiling","contacts":10000,"workload":"known","tps":37414.2}
{"kind":"service","contacts":10000,"workload":"known","concurrency":16,"mode":"closed","req_s":2613.4,"p50_ms":1.9,"p90_ms":16.41,"p99_ms":43.23,"p999_ms":86.33,"errors":0}
{"kind":"ceiling","contacts":10000,"workload":"mixed","tps":20439.0}
{"kind":"service","contacts":10000,"workload":"mixed","concurrency":16,"mode":"closed","req_s":1677.0,"p50_ms":3.36,"p90_ms":27.12,"p99_ms":72.89,"p999_ms":129.73,"errors":0}
{"kind":"ceiling","contacts":10000,"workload":"new","tps":19239.0}
{"kind":"service","contacts":10000,"workload":"new","concurrency":16,"mode":"closed","req_s":986.0,"p50_ms":14.75,"p90_ms":25.34,"p99_ms":47.42,"p999_ms":105.79,"errors":0}
{"kind":"service","contacts":10000,"workload":"known","concurrency":16,"mode":"open","rate":1306.0,"req_s":1305.8,"p50_ms":0.73,"p90_ms":1.01,"p99_ms":5.42,"p999_ms":23.09,"errors":0}
"#;

    #[test]
    fn chart_draws_each_workload_with_its_numbers() {
        let dir = std::env::temp_dir().join(format!("identity-bench-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let (input, output) = (dir.join("results.jsonl"), dir.join("chart.svg"));
        std::fs::write(&input, RESULTS).expect("results file");

        write_svg(&input, &output).expect("chart");

        let svg = std::fs::read_to_string(&output).expect("the SVG was written");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{svg}"
        );
        let texts = texts(&svg);
        for text in [
            "known, 10k contacts",
            "mixed, 10k contacts",
            "new, 10k contacts",
            "known, 10k contacts, 1306/s",
            // Throughput against the ceiling, then a closed- and an open-loop p99.
            "2613 (7%)",
            "37414",
            "43",
            "5.4",
        ] {
            assert!(texts.contains(&text), "no {text:?} among {texts:?}");
        }
    }

    /// What each `<text>` element of an SVG says.
    fn texts(svg: &str) -> Vec<&str> {
        svg.split("<text")
            .skip(1)
            .filter_map(|element| {
                let (_, rest) = element.split_once('>')?;
                let (text, _) = rest.split_once("</text>")?;
                Some(text.trim())
            })
            .collect()
    }

    #[test]
    fn a_file_without_service_measurements_is_refused() {
        let ceiling_only: Vec<Record> = RESULTS
            .lines()
            .take(1)
            .map(|line| serde_json::from_str(line).expect("record"))
            .collect();
        assert!(render(&ceiling_only).is_err());
    }
}
