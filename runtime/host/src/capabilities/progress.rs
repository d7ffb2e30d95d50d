//! `progress`: a step's reports into its sink. Per-device reports (from the
//! manager or from the host's own `erase-many`) are kept on a board and
//! shown together, so several devices in flight show in one status line.
//!
//! Everything here is bounded: message and device-name lengths, the number
//! of devices on the board, and the composed status line. Reports replace
//! each other (only the latest matters), so a flood of reports costs
//! nothing but the copy of the latest one.

use std::sync::{Arc, Mutex};

use super::ProgressView;
use crate::bindings::latest::ironic::hardware::progress;
use crate::policy::Need;
use crate::text::sanitize;
use crate::Limits;

/// Where a step's progress goes: `(percent, message)`.
pub type ProgressFn = Arc<dyn Fn(Option<u8>, &str) + Send + Sync>;

/// Longest device name kept on the board.
const MAX_DEVICE_NAME: usize = 128;

/// Where a call's progress goes. Shared by the host's worker threads during
/// `erase-many`, hence the lock.
pub(crate) struct ProgressSink {
    report: Option<ProgressFn>,
    max_message: usize,
    max_devices: usize,
    /// Latest `(device, percent, message)` of every device, in first-report order.
    board: Mutex<Vec<(String, Option<u8>, String)>>,
}

impl ProgressSink {
    pub fn new(report: Option<ProgressFn>, limits: &Limits) -> ProgressSink {
        ProgressSink {
            report,
            max_message: limits.max_progress_message,
            max_devices: limits.max_progress_devices,
            board: Mutex::new(Vec::new()),
        }
    }

    fn send(&self, percent: Option<u8>, message: &str) {
        if let Some(report) = &self.report {
            report(percent, message);
        }
    }

    /// A report for the whole step.
    pub fn step(&self, percent: Option<u8>, message: &str) {
        self.send(
            percent.map(|p| p.min(100)),
            &sanitize(message, self.max_message),
        );
    }

    /// A report for one device: recorded on the board, then the board is
    /// sent as one message whose percent is the devices' mean. Devices past
    /// the board's cap are counted in the mean's denominator only as the
    /// note "(+N more)".
    pub fn device(&self, device: &str, percent: Option<u8>, message: &str) {
        if self.report.is_none() {
            return;
        }
        let percent = percent.map(|p| p.min(100));
        let per_device = (self.max_message / 4).max(64);
        let device = sanitize(device, MAX_DEVICE_NAME);
        let message = sanitize(message, per_device);
        let (overall, text) = {
            let mut board = self.board.lock().unwrap_or_else(|p| p.into_inner());
            match board.iter().position(|(d, _, _)| *d == device) {
                Some(i) => {
                    board[i].1 = percent;
                    board[i].2 = message.into_owned();
                }
                None if board.len() < self.max_devices => {
                    board.push((device.into_owned(), percent, message.into_owned()))
                }
                // The board is full: a new device is not shown.
                None => return,
            }
            let sum: u32 = board
                .iter()
                .map(|(_, p, _)| u32::from(p.unwrap_or(0)))
                .sum();
            let overall = (sum / board.len().max(1) as u32) as u8;
            let mut text = String::new();
            for (d, _, m) in board.iter() {
                let part = format!("{}{d}: {m}", if text.is_empty() { "" } else { "; " });
                if text.len() + part.len() > self.max_message {
                    text.push_str("; …");
                    break;
                }
                text.push_str(&part);
            }
            (overall, text)
        };
        self.send(Some(overall), &text);
    }
}

impl progress::Host for ProgressView<'_> {
    async fn report(&mut self, percent: Option<u8>, message: String) -> wasmtime::Result<()> {
        if self.manager.policy.check(Need::Progress).is_ok() {
            self.sink.step(percent, &message);
        }
        Ok(())
    }

    async fn report_device(
        &mut self,
        device: String,
        percent: Option<u8>,
        message: String,
    ) -> wasmtime::Result<()> {
        if self.manager.policy.check(Need::Progress).is_ok() {
            self.sink.device(&device, percent, &message);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Reports = Arc<Mutex<Vec<(Option<u8>, String)>>>;

    fn collecting(limits: &Limits) -> (ProgressSink, Reports) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        let report: ProgressFn = Arc::new(move |p, m| {
            sink.lock().expect("lock").push((p, m.to_string()));
        });
        (ProgressSink::new(Some(report), limits), got)
    }

    #[test]
    fn device_reports_are_shown_together_with_their_mean() {
        let (sink, got) = collecting(&Limits::default());
        sink.device("/dev/sda", Some(50), "random pass 1/1 50%");
        sink.device("/dev/sdb", Some(10), "random pass 1/1 10%");
        sink.device("/dev/sda", Some(100), "erased");
        sink.step(Some(100), "done");
        let got = got.lock().expect("lock").clone();
        assert_eq!(
            got,
            vec![
                (Some(50), "/dev/sda: random pass 1/1 50%".to_string()),
                (
                    Some(30),
                    "/dev/sda: random pass 1/1 50%; /dev/sdb: random pass 1/1 10%".to_string()
                ),
                (
                    Some(55),
                    "/dev/sda: erased; /dev/sdb: random pass 1/1 10%".to_string()
                ),
                (Some(100), "done".to_string()),
            ]
        );
    }

    #[test]
    fn board_and_messages_are_bounded() {
        let limits = Limits {
            max_progress_devices: 4,
            max_progress_message: 256,
            ..Limits::default()
        };
        let (sink, got) = collecting(&limits);
        let huge = "x".repeat(1 << 20);
        for i in 0..64 {
            sink.device(&format!("/dev/sd{i}"), Some(10), &huge);
        }
        sink.step(None, &huge);
        let got = got.lock().expect("lock");
        assert!(
            got.iter().all(|(_, m)| m.len() <= 300),
            "a message over the cap"
        );
        assert_eq!(
            got.len(),
            4 + 1,
            "devices past the board's cap are not shown"
        );
    }
}
