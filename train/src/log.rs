//! The per-epoch CSV log of a run: one header line, then one line per
//! epoch, appended as each epoch ends (a resumed run keeps the earlier
//! lines).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// The columns of the log.
pub const HEADER: &str =
    "epoch,lr,loss,metric,val_loss,val_metric,test_metric,images_per_s,seconds";

/// One epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochRecord {
    pub epoch: usize,
    pub lr: f32,
    pub loss: f32,
    pub metric: f32,
    pub val_loss: f32,
    pub val_metric: f32,
    pub test_metric: f32,
    pub images_per_s: f32,
    pub seconds: f32,
}

impl EpochRecord {
    /// The CSV line.
    pub fn csv(&self) -> String {
        format!(
            "{},{:e},{:.6},{:.6},{:.6},{:.6},{:.6},{:.1},{:.1}",
            self.epoch,
            self.lr,
            self.loss,
            self.metric,
            self.val_loss,
            self.val_metric,
            self.test_metric,
            self.images_per_s,
            self.seconds
        )
    }

    fn parse(line: &str) -> Option<EpochRecord> {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 9 {
            return None;
        }
        let x = |i: usize| f[i].trim().parse::<f32>().ok();
        Some(EpochRecord {
            epoch: f[0].trim().parse().ok()?,
            lr: x(1)?,
            loss: x(2)?,
            metric: x(3)?,
            val_loss: x(4)?,
            val_metric: x(5)?,
            test_metric: x(6)?,
            images_per_s: x(7)?,
            seconds: x(8)?,
        })
    }

    /// A line for the terminal.
    pub fn line(&self, metric: &str) -> String {
        format!(
            "epoch {}: lr {:.2e} loss {:.4} {metric} {:.4} | val_loss {:.4} val_{metric} {:.4} | test_{metric} {:.4} | {:.0} images/s, {:.0} s",
            self.epoch,
            self.lr,
            self.loss,
            self.metric,
            self.val_loss,
            self.val_metric,
            self.test_metric,
            self.images_per_s,
            self.seconds
        )
    }
}

/// An open log.
#[derive(Debug)]
pub struct TrainLog {
    pub path: PathBuf,
    pub records: Vec<EpochRecord>,
}

impl TrainLog {
    /// Starts a new log at `path`, or (`resume`) keeps its lines.
    pub fn open(path: &Path, resume: bool) -> io::Result<TrainLog> {
        let mut records = Vec::new();
        if resume {
            if let Ok(f) = File::open(path) {
                for line in BufReader::new(f).lines().skip(1) {
                    if let Some(r) = EpochRecord::parse(&line?) {
                        records.push(r);
                    }
                }
            }
        }
        let mut text = format!("{HEADER}\n");
        for r in &records {
            text.push_str(&r.csv());
            text.push('\n');
        }
        akida_host::fsutil::atomic_write(path, text.as_bytes())?;
        Ok(TrainLog {
            path: path.to_owned(),
            records,
        })
    }

    /// Appends an epoch.
    pub fn append(&mut self, record: &EpochRecord) -> io::Result<()> {
        let mut f = OpenOptions::new().append(true).open(&self.path)?;
        writeln!(f, "{}", record.csv())?;
        self.records.push(*record);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_resume_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m_log.csv");
        let r = EpochRecord {
            epoch: 1,
            lr: 1e-3,
            loss: 0.5,
            metric: 0.75,
            val_loss: 0.6,
            val_metric: 0.7,
            test_metric: 0.69,
            images_per_s: 812.0,
            seconds: 12.5,
        };
        let mut log = TrainLog::open(&path, false).unwrap();
        log.append(&r).unwrap();
        let again = TrainLog::open(&path, true).unwrap();
        assert_eq!(again.records, vec![r]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(HEADER), "{text}");
        let fresh = TrainLog::open(&path, false).unwrap();
        assert!(fresh.records.is_empty());
    }
}
