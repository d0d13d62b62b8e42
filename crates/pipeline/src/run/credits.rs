//! The run's tally: steps done, failed and reused, and the credits charged, which every
//! progress event carries.

use super::*;

impl Shared {
    pub(super) fn counts_now(&self) -> ProgressCounts {
        self.tally.lock().expect("tally lock").counts(self.started)
    }

    /// Changes the tally, emits the event made from the new counts and hands the new
    /// percentage to the background writer. The event is sent under the tally's lock, so
    /// readers get events in the order of their counts.
    pub(super) fn count(
        &self,
        change: impl FnOnce(&mut Tally),
        event: impl FnOnce(ProgressCounts) -> Option<ProgressEvent>,
    ) -> ProgressCounts {
        let counts = {
            let mut tally = self.tally.lock().expect("tally lock");
            change(&mut tally);
            let counts = tally.counts(self.started);
            if let Some(event) = event(counts) {
                self.emit(event);
            }
            counts
        };
        self.percentages.send_replace(counts.percentage());
        counts
    }

    /// Emits an event with the current counts, under the tally's lock (see [`Self::count`]).
    pub(super) fn emit_now(
        &self,
        event: impl FnOnce(ProgressCounts) -> ProgressEvent,
    ) -> ProgressCounts {
        let tally = self.tally.lock().expect("tally lock");
        let counts = tally.counts(self.started);
        self.emit(event(counts));
        counts
    }

    pub(super) fn count_success(
        &self,
        credits: i64,
        event: impl FnOnce(ProgressCounts) -> ProgressEvent,
    ) -> ProgressCounts {
        self.count(
            |tally| {
                tally.done += 1;
                tally.credits_used += credits;
            },
            |counts| Some(event(counts)),
        )
    }

    pub(super) fn count_failure(
        &self,
        event: impl FnOnce(ProgressCounts) -> ProgressEvent,
    ) -> ProgressCounts {
        self.count(|tally| tally.failed += 1, |counts| Some(event(counts)))
    }

    /// An analysis planned `actual` close-ups where `planned` were assumed.
    pub(super) fn replan(&self, planned: usize, actual: usize) {
        self.count(
            |tally| tally.total = tally.total + actual - planned,
            |_| None,
        );
    }
}
