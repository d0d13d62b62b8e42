//! Per-step timing of the local provider's work, for the benchmark and for anyone asking
//! where the time goes (`LocalProvider::analyze_timed` and friends).

use std::time::{Duration, Instant};

/// Durations of named steps, in the order they ran; a step that runs twice is summed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepTimes {
    steps: Vec<(&'static str, Duration)>,
}

impl StepTimes {
    /// Every step and its total time, in the order each first ran.
    pub fn steps(&self) -> &[(&'static str, Duration)] {
        &self.steps
    }

    /// The total of one step, zero if it did not run.
    pub fn get(&self, step: &str) -> Duration {
        self.steps
            .iter()
            .find(|(s, _)| *s == step)
            .map_or(Duration::ZERO, |(_, d)| *d)
    }

    /// The sum of every step.
    pub fn total(&self) -> Duration {
        self.steps.iter().map(|(_, d)| *d).sum()
    }

    /// Adds another run's steps to these.
    pub fn add(&mut self, other: &StepTimes) {
        for (step, d) in &other.steps {
            self.record(step, *d);
        }
    }

    fn record(&mut self, step: &'static str, d: Duration) {
        match self.steps.iter_mut().find(|(s, _)| *s == step) {
            Some(entry) => entry.1 += d,
            None => self.steps.push((step, d)),
        }
    }
}

/// Times steps as they run.
#[derive(Debug, Default)]
pub(crate) struct Timer {
    times: StepTimes,
}

impl Timer {
    /// Runs `f` as step `step`.
    pub(crate) fn time<T>(&mut self, step: &'static str, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.times.record(step, start.elapsed());
        out
    }

    /// The times so far.
    pub(crate) fn finish(self) -> StepTimes {
        self.times
    }
}
