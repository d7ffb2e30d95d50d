//! `progress`: a step's reports into its sink. Per-device reports (from the
//! manager or from the host's own `erase-many`) are kept on a board and
//! sent together, so several devices in flight show in one status line.

use std::sync::Mutex;

use super::log::truncate;
use crate::bindings::latest::ironic::hardware::progress;
use crate::policy::Need;
use crate::sandbox::{CallState, ProgressSender};

/// Where a call's progress goes. Shared by the host's worker threads during
/// `erase-many`, hence the lock.
pub(crate) struct ProgressSink {
    sender: Option<ProgressSender>,
    /// Latest `(device, percent, message)` of every device, in first-report order.
    board: Mutex<Vec<(String, Option<u8>, String)>>,
}

impl ProgressSink {
    pub fn new(sender: Option<ProgressSender>) -> ProgressSink {
        ProgressSink {
            sender,
            board: Mutex::new(Vec::new()),
        }
    }

    fn send(&self, percent: Option<u8>, message: String) {
        if let Some(sink) = &self.sender {
            // The receiver is gone only when the call is over.
            let _ = sink.send((percent, message));
        }
    }

    /// A report for the whole step.
    pub fn step(&self, percent: Option<u8>, message: &str) {
        self.send(percent.map(|p| p.min(100)), truncate(message).to_string());
    }

    /// A report for one device: recorded on the board, then the board is
    /// sent as one message whose percent is the devices' mean.
    pub fn device(&self, device: &str, percent: Option<u8>, message: &str) {
        let percent = percent.map(|p| p.min(100));
        let (overall, text) = {
            let mut board = self.board.lock().unwrap_or_else(|p| p.into_inner());
            match board.iter_mut().find(|(d, _, _)| d == device) {
                Some(entry) => {
                    entry.1 = percent;
                    entry.2 = message.to_string();
                }
                None => board.push((device.to_string(), percent, message.to_string())),
            }
            let sum: u32 = board
                .iter()
                .map(|(_, p, _)| u32::from(p.unwrap_or(0)))
                .sum();
            let overall = (sum / board.len().max(1) as u32) as u8;
            let text = board
                .iter()
                .map(|(d, _, m)| format!("{d}: {m}"))
                .collect::<Vec<_>>()
                .join("; ");
            (overall, text)
        };
        self.send(Some(overall), truncate(&text).to_string());
    }
}

impl progress::Host for CallState {
    fn report(&mut self, percent: Option<u8>, message: String) {
        if self.manager.policy.check(Need::Progress).is_err() {
            return;
        }
        tracing::debug!(manager = %self.manager.name, ?percent, "progress: {}", truncate(&message));
        self.progress.step(percent, &message);
    }

    fn report_device(&mut self, device: String, percent: Option<u8>, message: String) {
        if self.manager.policy.check(Need::Progress).is_err() {
            return;
        }
        tracing::debug!(manager = %self.manager.name, device, ?percent, "progress: {}", truncate(&message));
        self.progress.device(&device, percent, &message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_reports_are_shown_together_with_their_mean() {
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = ProgressSink::new(Some(tx));
        sink.device("/dev/sda", Some(50), "random pass 1/1 50%");
        sink.device("/dev/sdb", Some(10), "random pass 1/1 10%");
        sink.device("/dev/sda", Some(100), "erased");
        sink.step(Some(100), "done");
        let got: Vec<_> = rx.try_iter().collect();
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
}
