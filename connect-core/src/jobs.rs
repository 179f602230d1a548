//! CPU work on tokio's blocking pool, taken back in the order it was started: a source's
//! snapshot row conversion or log decoding runs there on every core while its reading
//! task only reads.

use std::collections::VecDeque;

use crate::error::Error;
use tokio::task::JoinHandle;

/// Jobs in flight, oldest first.
pub struct OrderedJobs<T> {
    jobs: VecDeque<JoinHandle<Result<T, Error>>>,
    /// Two per core keep every core busy while the oldest is taken back.
    max: usize,
    /// What the jobs do, for the error when one panics.
    what: &'static str,
}

impl<T: Send + 'static> OrderedJobs<T> {
    /// No jobs yet; `what` names the work in the error when a job panics.
    pub fn new(what: &'static str) -> Self {
        OrderedJobs {
            jobs: VecDeque::new(),
            max: std::thread::available_parallelism()
                .map_or(2, |n| n.get() * 2)
                .clamp(2, 16),
            what,
        }
    }

    /// Starts a job.
    pub fn start(&mut self, job: impl FnOnce() -> Result<T, Error> + Send + 'static) {
        self.jobs.push_back(tokio::task::spawn_blocking(job));
    }

    /// The oldest job's output: once it is done, or waited for when `wait` or while too
    /// many are in flight; None when nothing is to be taken now.
    pub async fn next(&mut self, wait: bool) -> Result<Option<T>, Error> {
        let Some(front) = self.jobs.front() else {
            return Ok(None);
        };
        if !(wait || front.is_finished() || self.jobs.len() > self.max) {
            return Ok(None);
        }
        let job = self.jobs.pop_front().expect("a front job");
        let output = job
            .await
            .map_err(|e| Error::fatal("jobs", format!("{} failed: {e}", self.what)))??;
        Ok(Some(output))
    }
}
