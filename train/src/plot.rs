//! The training-curve PNG beside the saved model: loss (training,
//! validation) and metric (training, validation, test) per epoch, drawn with
//! `plotters` into a pixel buffer and written with `png`.
//!
//! Text needs a TrueType font: the first of a few common system fonts found
//! (DejaVu, Liberation, ...) is used; without one, the curves are drawn with
//! no labels (the CSV log beside them holds the numbers).

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::log::EpochRecord;

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 420;

const FONTS: [&str; 5] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
];

/// Registers a system font once; whether text can be drawn.
fn font() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| {
        for path in FONTS {
            if let Ok(bytes) = std::fs::read(path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

type Series<'a> = (&'a str, RGBColor, Vec<(f32, f32)>);

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    epochs: usize,
    series: &[Series<'_>],
    text: bool,
) -> Result<(), String> {
    let values = series.iter().flat_map(|s| s.2.iter().map(|p| p.1));
    let (lo, hi) = values.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
        if v.is_finite() {
            (lo.min(v), hi.max(v))
        } else {
            (lo, hi)
        }
    });
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.05).max(1e-3);
    let mut builder = ChartBuilder::on(area);
    builder.margin(12);
    if text {
        builder
            .caption(title, ("sans-serif", 20))
            .x_label_area_size(30)
            .y_label_area_size(50);
    }
    let mut chart = builder
        .build_cartesian_2d(1f32..(epochs.max(2) as f32), (lo - pad)..(hi + pad))
        .map_err(|e| e.to_string())?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("epoch");
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(|e| e.to_string())?;
    for (name, color, points) in series {
        let drawn = chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?;
        if text {
            drawn.label(*name).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
    }
    if text {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Draws the curves of `records` to `path` (a PNG, written atomically).
pub fn draw(records: &[EpochRecord], metric: &str, path: &Path) -> Result<(), String> {
    let text = font();
    let mut pixels = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (left, right) = root.split_horizontally(WIDTH / 2);
        let pts = |f: fn(&EpochRecord) -> f32| -> Vec<(f32, f32)> {
            records.iter().map(|r| (r.epoch as f32, f(r))).collect()
        };
        let epochs = records.last().map_or(1, |r| r.epoch);
        panel(
            &left,
            "loss",
            epochs,
            &[
                ("training", BLUE, pts(|r| r.loss)),
                ("validation", RED, pts(|r| r.val_loss)),
            ],
            text,
        )?;
        panel(
            &right,
            metric,
            epochs,
            &[
                ("training", BLUE, pts(|r| r.metric)),
                ("validation", RED, pts(|r| r.val_metric)),
                ("test", GREEN, pts(|r| r.test_metric)),
            ],
            text,
        )?;
        root.present().map_err(|e| e.to_string())?;
    }
    let mut png_bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png_bytes, WIDTH, HEIGHT);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
        writer
            .write_image_data(&pixels)
            .map_err(|e| e.to_string())?;
    }
    akida_host::fsutil::atomic_write(path, &png_bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curve.png");
        let records: Vec<EpochRecord> = (1..=3)
            .map(|e| EpochRecord {
                epoch: e,
                lr: 1e-3,
                loss: 2.0 / e as f32,
                metric: 0.3 * e as f32,
                val_loss: 2.2 / e as f32,
                val_metric: 0.25 * e as f32,
                test_metric: 0.24 * e as f32,
                images_per_s: 100.0,
                seconds: 1.0,
            })
            .collect();
        draw(&records, "accuracy", &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let reader = decoder.read_info().unwrap();
        assert_eq!(reader.info().width, WIDTH);
    }
}
