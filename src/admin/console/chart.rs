//! Charts drawn on the server as inline SVG (no script, no library): bars
//! of counts per time bucket with an optional limit line, and figures
//! against their limits. Each chart is an image for screen readers
//! (`role="img"`) named by its `<title>` and described by a `<desc>` that
//! gives every number the bars show.

use maud::{Markup, html};

/// Drawing area (the SVG scales to its box; these are its units).
const W: f64 = 640.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 30.0;

/// One series of a bar chart: its name (for the legend and the text
/// alternative), its CSS class (colour) and a value per bucket.
pub struct Bars<'a> {
    /// Shown in the legend and read out.
    pub name: &'a str,
    /// `bar-a`, `bar-b`, `bar-c`: the colours of the stylesheet.
    pub class: &'static str,
    /// One value per bucket, oldest first.
    pub values: &'a [u64],
}

/// A limit drawn across the chart: its name and value.
pub struct Limit<'a> {
    /// Read out and written at the line's end.
    pub name: &'a str,
    /// In the bars' unit.
    pub value: f64,
}

/// A round step for the axis: 1, 2 or 5 times a power of ten.
fn nice_max(max: f64) -> f64 {
    if max <= 1.0 {
        return 1.0;
    }
    let p = 10f64.powf(max.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= max {
            return m * p;
        }
    }
    10.0 * p
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// What frames a chart of buckets: its id (which makes the title's and
/// description's ids unique on the page), title, the buckets' labels (one
/// written below every `label_every`), its height in drawing units, and
/// whether the series stack (one column a bucket) or stand side by side.
pub struct Frame<'a> {
    /// The SVG element's id.
    pub id: &'a str,
    /// Shown above the chart and read out as its name.
    pub title: &'a str,
    /// One label a bucket, oldest first.
    pub labels: &'a [String],
    /// Write every this many labels.
    pub label_every: usize,
    /// Height in drawing units (the width is 640).
    pub height: f64,
    /// One stacked column a bucket instead of a group of bars.
    pub stacked: bool,
}

/// Bars per bucket (one group per bucket, one bar per series, or one
/// stacked column per bucket), labelled below, and an optional limit line.
pub fn bars(frame: &Frame<'_>, series: &[Bars<'_>], limit: Option<Limit<'_>>) -> Markup {
    let Frame {
        id,
        title,
        labels,
        label_every,
        height,
        stacked,
    } = *frame;
    let n = series
        .iter()
        .map(|s| s.values.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let top_value = if stacked {
        (0..n)
            .map(|i| {
                series
                    .iter()
                    .map(|s| s.values.get(i).copied().unwrap_or(0))
                    .sum::<u64>()
            })
            .max()
            .unwrap_or(0)
    } else {
        series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .max()
            .unwrap_or(0)
    } as f64;
    let max = nice_max(top_value.max(limit.as_ref().map_or(0.0, |l| l.value)));
    let plot_h = height - TOP - BOTTOM;
    let plot_w = W - LEFT - RIGHT;
    let group = plot_w / n as f64;
    let k = if stacked {
        1.0
    } else {
        series.len().max(1) as f64
    };
    let bar_w = (group * 0.8 / k).max(1.0);
    let y = |v: f64| TOP + plot_h - v / max * plot_h;
    // Each bar: (series, bucket, x, bottom value, top value).
    let mut base = vec![0u64; n];
    let mut rects = Vec::new();
    for (si, s) in series.iter().enumerate() {
        for (i, v) in s.values.iter().enumerate().filter(|(_, v)| **v > 0) {
            let (x, from) = if stacked {
                (LEFT + group * i as f64 + group * 0.1, base[i])
            } else {
                (LEFT + group * i as f64 + group * 0.1 + bar_w * si as f64, 0)
            };
            base[i] += v;
            rects.push((si, i, x, from, from + v));
        }
    }
    // The text alternative: every series' values in order, and the limit.
    let mut desc = series
        .iter()
        .map(|s| {
            let v: Vec<String> = s.values.iter().map(u64::to_string).collect();
            format!("{}: {}", s.name, v.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ");
    if let Some(l) = &limit {
        desc.push_str(&format!("; {}: {}", l.name, num(l.value)));
    }
    let (tid, did) = (format!("{id}-title"), format!("{id}-desc"));
    html! {
        figure.chart {
            figcaption { (title) }
            svg id=(id) class="chart" role="img" aria-labelledby={ (tid) " " (did) }
                viewBox={ "0 0 " (W) " " (height) } preserveAspectRatio="xMinYMin meet" {
                title id=(tid) { (title) }
                desc id=(did) { (desc) }
                // Axis and the top gridline with their values.
                line.axis x1=(LEFT) y1=(y(0.0)) x2=(W - RIGHT) y2=(y(0.0)) {}
                line.grid x1=(LEFT) y1=(y(max)) x2=(W - RIGHT) y2=(y(max)) {}
                line.grid x1=(LEFT) y1=(y(max / 2.0)) x2=(W - RIGHT) y2=(y(max / 2.0)) {}
                text.tick x=(LEFT - 6.0) y=(y(0.0) + 4.0) text-anchor="end" { "0" }
                text.tick x=(LEFT - 6.0) y=(y(max / 2.0) + 4.0) text-anchor="end" { (num(max / 2.0)) }
                text.tick x=(LEFT - 6.0) y=(y(max) + 4.0) text-anchor="end" { (num(max)) }
                @for (si, s) in series.iter().enumerate() {
                    g class=(s.class) {
                        @for (_, i, x, from, to) in rects.iter().filter(|r| r.0 == si) {
                            rect x=(format!("{x:.1}")) y=(format!("{:.1}", y(*to as f64)))
                                width=(format!("{bar_w:.1}")) height=(format!("{:.1}", y(*from as f64) - y(*to as f64))) {
                                title { (s.name) ": " (to - from) @if let Some(l) = labels.get(*i) { " (" (l) ")" } }
                            }
                        }
                    }
                }
                @for (i, l) in labels.iter().enumerate() {
                    @if label_every > 0 && i % label_every == 0 {
                        text.tick x=(format!("{:.1}", LEFT + group * (i as f64 + 0.5))) y=(height - 10.0) text-anchor="middle" { (l) }
                    }
                }
                @if let Some(l) = &limit {
                    line.limit x1=(LEFT) y1=(format!("{:.1}", y(l.value))) x2=(W - RIGHT) y2=(format!("{:.1}", y(l.value))) {}
                    text.limit-label x=(W - RIGHT - 2.0) y=(format!("{:.1}", y(l.value) - 4.0)) text-anchor="end" {
                        (l.name) ": " (num(l.value))
                    }
                }
            }
            ul.legend {
                @for s in series {
                    li { span class={ "swatch " (s.class) } aria-hidden="true" {} (s.name) }
                }
                @if let Some(l) = &limit {
                    li { span.swatch.limit aria-hidden="true" {} (l.name) }
                }
            }
        }
    }
}

/// One figure against its limit: its name, what it was, the limit.
pub struct Figure<'a> {
    /// Read out and written beside the bar.
    pub name: &'a str,
    /// What was seen.
    pub value: f64,
    /// Where the rule trips.
    pub limit: f64,
    /// How to write both (`12`, `80%`).
    pub unit: &'a str,
}

/// Horizontal bars of figures, each with a mark at its limit (each row on
/// its own scale): what tripped a rule when no time series was kept.
pub fn figures(id: &str, title: &str, limit_word: &str, rows: &[Figure<'_>]) -> Markup {
    let row_h = 34.0;
    let height = TOP + row_h * rows.len() as f64 + 6.0;
    let (label_w, plot_w) = (230.0, W - 230.0 - 120.0);
    let show = |v: f64, unit: &str| format!("{}{unit}", num(v));
    let desc = rows
        .iter()
        .map(|r| {
            format!(
                "{}: {} ({limit_word} {})",
                r.name,
                show(r.value, r.unit),
                show(r.limit, r.unit)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let (tid, did) = (format!("{id}-title"), format!("{id}-desc"));
    html! {
        figure.chart {
            figcaption { (title) }
            svg id=(id) class="chart" role="img" aria-labelledby={ (tid) " " (did) }
                viewBox={ "0 0 " (W) " " (height) } preserveAspectRatio="xMinYMin meet" {
                title id=(tid) { (title) }
                desc id=(did) { (desc) }
                @for (i, r) in rows.iter().enumerate() {
                    @let top = TOP + row_h * i as f64;
                    @let scale = (r.value.max(r.limit) * 1.15).max(f64::MIN_POSITIVE);
                    @let w = r.value / scale * plot_w;
                    @let lx = label_w + r.limit / scale * plot_w;
                    @let class = if r.value >= r.limit { "bar-c" } else { "bar-a" };
                    text.tick x=(label_w - 8.0) y=(top + 15.0) text-anchor="end" { (r.name) }
                    rect class=(class)
                        x=(label_w) y=(top + 3.0) width=(format!("{w:.1}")) height="16" {}
                    line.marker x1=(format!("{lx:.1}")) y1=(top - 1.0) x2=(format!("{lx:.1}")) y2=(top + 23.0) {}
                    text.tick x=(label_w + plot_w + 8.0) y=(top + 15.0) {
                        (show(r.value, r.unit)) " / " (show(r.limit, r.unit))
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_round_up_and_charts_say_their_numbers() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(3.0), 5.0);
        assert_eq!(nice_max(12.0), 20.0);
        assert_eq!(nice_max(100.0), 100.0);
        let labels = ["10:00".to_string(), "10:05".into(), "10:10".into()];
        let mut frame = Frame {
            id: "c1",
            title: "Recipients per 5 minutes",
            labels: &labels,
            label_every: 1,
            height: 180.0,
            stacked: false,
        };
        let svg = bars(
            &frame,
            &[Bars {
                name: "refused",
                class: "bar-c",
                values: &[0, 4, 1],
            }],
            Some(Limit {
                name: "allowance",
                value: 3.0,
            }),
        )
        .into_string();
        assert!(
            svg.contains("<svg id=\"c1\" class=\"chart\" role=\"img\""),
            "{svg}"
        );
        assert!(svg.contains("<title id=\"c1-title\">Recipients per 5 minutes</title>"));
        assert!(svg.contains("refused: 0, 4, 1; allowance: 3"), "{svg}");
        // Two bars (no rect for a zero), the limit line and its label.
        assert_eq!(svg.matches("<rect").count(), 2, "{svg}");
        assert!(svg.contains("class=\"limit\""));
        // Stacked, the second series starts where the first ends.
        frame.stacked = true;
        let svg = bars(
            &frame,
            &[
                Bars {
                    name: "a",
                    class: "bar-a",
                    values: &[2, 0, 0],
                },
                Bars {
                    name: "b",
                    class: "bar-b",
                    values: &[3, 0, 0],
                },
            ],
            None,
        )
        .into_string();
        assert_eq!(svg.matches("<rect").count(), 2, "{svg}");
        assert!(svg.contains(">5</text>"), "the axis goes to 5: {svg}");
        assert!(svg.contains("<title>b: 3 (10:00)</title>"), "{svg}");
        let f = figures(
            "f1",
            "Figures",
            "limit",
            &[Figure {
                name: "refused share",
                value: 100.0,
                limit: 50.0,
                unit: "%",
            }],
        )
        .into_string();
        assert!(f.contains("refused share: 100% (limit 50%)"), "{f}");
    }
}
