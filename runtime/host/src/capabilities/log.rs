//! `log`: a manager's messages in the agent's log, tagged with its name,
//! escaped (a message can never forge a line of the agent's own) and
//! rate-limited per manager, counting what was dropped.

use std::sync::Mutex;
use std::time::Instant;

use super::LogView;
use crate::bindings::latest::ironic::hardware::log::{self, Level};
use crate::policy::Need;
use crate::text::sanitize;
use crate::Limits;

/// A token bucket of log lines: `rate` per second, `burst` at once.
#[derive(Debug)]
pub(crate) struct LogBudget {
    rate: f64,
    burst: f64,
    max_message: usize,
    state: Mutex<BudgetState>,
}

#[derive(Debug)]
struct BudgetState {
    tokens: f64,
    refilled: Instant,
    /// Dropped since the last line that went through.
    dropped: u64,
    /// Dropped in all.
    dropped_total: u64,
}

/// What the budget says about one line.
pub(crate) enum Admit {
    /// Log it; `dropped` lines went missing before it.
    Yes { dropped: u64 },
    /// Drop it, the first of a run of drops (worth saying so).
    FirstDrop,
    /// Drop it.
    No,
}

impl LogBudget {
    pub(crate) fn new(limits: &Limits) -> LogBudget {
        let burst = f64::from(limits.log_burst.max(1));
        LogBudget {
            rate: f64::from(limits.log_lines_per_second),
            burst,
            max_message: limits.max_log_message,
            state: Mutex::new(BudgetState {
                tokens: burst,
                refilled: Instant::now(),
                dropped: 0,
                dropped_total: 0,
            }),
        }
    }

    pub(crate) fn admit(&self) -> Admit {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let elapsed = now.duration_since(st.refilled).as_secs_f64();
        st.tokens = (st.tokens + elapsed * self.rate).min(self.burst);
        st.refilled = now;
        if st.tokens >= 1.0 {
            st.tokens -= 1.0;
            let dropped = std::mem::take(&mut st.dropped);
            Admit::Yes { dropped }
        } else {
            st.dropped += 1;
            st.dropped_total += 1;
            if st.dropped == 1 {
                Admit::FirstDrop
            } else {
                Admit::No
            }
        }
    }

    /// Lines dropped by the rate limit since the manager was loaded.
    pub(crate) fn dropped_total(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .dropped_total
    }

    pub(crate) fn max_message(&self) -> usize {
        self.max_message
    }
}

impl log::Host for LogView<'_> {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        if self.manager.policy.check(Need::Log).is_err() {
            return Ok(());
        }
        let manager = self.manager.name.as_str();
        let budget = &self.manager.log_budget;
        match budget.admit() {
            Admit::No => return Ok(()),
            Admit::FirstDrop => {
                tracing::warn!(target: "manager", manager, "log rate limit reached: dropping messages of manager {manager} until its rate falls");
                return Ok(());
            }
            Admit::Yes { dropped } if dropped > 0 => {
                tracing::warn!(target: "manager", manager, dropped, "log rate limit: {dropped} messages of manager {manager} dropped");
            }
            Admit::Yes { .. } => {}
        }
        let message = sanitize(&message, budget.max_message());
        match level {
            Level::Trace => tracing::trace!(target: "manager", manager, "{message}"),
            Level::Debug => tracing::debug!(target: "manager", manager, "{message}"),
            Level::Info => tracing::info!(target: "manager", manager, "{message}"),
            Level::Warn => tracing::warn!(target: "manager", manager, "{message}"),
            Level::Error => tracing::error!(target: "manager", manager, "{message}"),
        }
        Ok(())
    }
}

// `types` has no functions; the world imports it through `manager`.
impl crate::bindings::latest::ironic::hardware::types::Host for super::TypesView {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_admits_a_burst_then_drops_and_counts() {
        let limits = Limits {
            log_lines_per_second: 0,
            log_burst: 3,
            ..Limits::default()
        };
        let b = LogBudget::new(&limits);
        for _ in 0..3 {
            assert!(matches!(b.admit(), Admit::Yes { dropped: 0 }));
        }
        assert!(matches!(b.admit(), Admit::FirstDrop));
        for _ in 0..4 {
            assert!(matches!(b.admit(), Admit::No));
        }
        assert_eq!(b.dropped_total(), 5);
    }
}
