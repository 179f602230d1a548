//! The in-process engine: runs pipelines (source → transforms → destination), tracks
//! acknowledgements, commits offsets only after delivery, retries, and shuts down cleanly.
//!
//! ```no_run
//! # use connect_core::{Engine, MemoryOffsetStore};
//! # async fn demo(source: impl connect_core::SourceConnector + 'static) -> connect_core::Result<()> {
//! let (engine, mut batches) = Engine::builder()
//!     .name("orders-cache")
//!     .source(source)
//!     .offsets(MemoryOffsetStore::new())
//!     .into_channel(64)
//!     .start()
//!     .await?;
//! while let Some(batch) = batches.recv().await {
//!     for change in batch.changes() {
//!         println!("{:?} {:?}", change.op(), change.after());
//!     }
//!     batch.ack(); // only now may the offsets move past this batch
//! }
//! let report = engine.wait().await?;
//! # Ok(()) }
//! ```

mod ack;
mod batch;
mod metrics;
mod pipeline;
mod policy;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use batch::{Batch, BatchReceiver, Committer};
pub use metrics::{EngineListener, MetricsSnapshot, NoopListener, PipelineSnapshot};
pub use pipeline::{
    DeadLetterQueue, ErrorContext, ErrorTolerance, Pipeline, PipelineBuilder, PipelineReport,
    PipelineSettings, DEFAULT_MAX_BATCH_BYTES, DEFAULT_MAX_BATCH_RECORDS,
    DEFAULT_MAX_QUEUE_BATCHES, DEFAULT_MAX_QUEUE_BYTES, DEFAULT_RETRY_MAX_DELAY,
    DEFAULT_RETRY_TIMEOUT, DEFAULT_TASKS_MAX,
};
pub use policy::CommitPolicy;

use crate::connector::{SinkConnector, SourceConnector};
use crate::error::{BoxError, Error, Result};
use crate::offsets::OffsetStore;
use crate::record::Record;
use crate::transform::{Predicate, Transform};
use metrics::PipelineMetrics;
use pipeline::RunContext;

/// Default bound on a graceful shutdown.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Default engine name (and name of its single pipeline).
pub const DEFAULT_ENGINE_NAME: &str = "connect";

/// What the engine did when it stopped.
#[derive(Debug, Clone, Default)]
pub struct ShutdownReport {
    /// One report per pipeline.
    pub pipelines: Vec<PipelineReport>,
}

impl ShutdownReport {
    /// Every pipeline drained all its batches.
    pub fn drained(&self) -> bool {
        self.pipelines.iter().all(|p| p.drained)
    }

    /// Some pipeline hit the shutdown bound.
    pub fn timed_out(&self) -> bool {
        self.pipelines.iter().any(|p| p.timed_out)
    }

    /// Every pipeline made its final commit.
    pub fn committed(&self) -> bool {
        self.pipelines.iter().all(|p| p.committed)
    }
}

/// Builds an engine of one or more pipelines.
///
/// For one pipeline, configure it directly on this builder (`source`, `transform`,
/// `offsets`, ...) and finish with `into_*`; for several, add [`Pipeline`]s built with
/// [`PipelineBuilder`] and call [`EngineBuilder::start`].
pub struct EngineBuilder {
    name: Arc<str>,
    pipelines: Vec<Pipeline>,
    draft: PipelineBuilder,
    shutdown_timeout: Duration,
    handle_signals: bool,
    listener: Arc<dyn EngineListener>,
}

impl std::fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("name", &self.name)
            .field("pipelines", &self.pipelines)
            .finish()
    }
}

impl Default for EngineBuilder {
    fn default() -> Self {
        EngineBuilder {
            name: Arc::from(DEFAULT_ENGINE_NAME),
            pipelines: Vec::new(),
            draft: PipelineBuilder::new(DEFAULT_ENGINE_NAME),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            handle_signals: false,
            listener: Arc::new(NoopListener),
        }
    }
}

impl EngineBuilder {
    /// The engine's name; also the name (offsets namespace) of its single pipeline.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Arc::from(name);
        self.draft.set_name(name);
        self
    }

    /// Adds a pipeline.
    pub fn pipeline(mut self, pipeline: Pipeline) -> Self {
        self.pipelines.push(pipeline);
        self
    }

    /// Bound on a graceful shutdown (drain, commit, stop tasks).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Shut down gracefully on SIGTERM or SIGINT.
    pub fn handle_signals(mut self, yes: bool) -> Self {
        self.handle_signals = yes;
        self
    }

    /// Hooks called on task and commit events.
    pub fn listener(mut self, listener: impl EngineListener + 'static) -> Self {
        self.listener = Arc::new(listener);
        self
    }

    /// The source of the single pipeline.
    pub fn source(mut self, source: impl SourceConnector + 'static) -> Self {
        self.draft = self.draft.source(source);
        self
    }

    /// Appends a transform to the single pipeline.
    pub fn transform(mut self, alias: &str, transform: impl Transform + 'static) -> Self {
        self.draft = self.draft.transform(alias, transform);
        self
    }

    /// Appends a predicate-gated transform to the single pipeline.
    pub fn transform_when(
        mut self,
        alias: &str,
        transform: impl Transform + 'static,
        predicate: Arc<dyn Predicate>,
        negate: bool,
    ) -> Self {
        self.draft = self
            .draft
            .transform_when(alias, transform, predicate, negate);
        self
    }

    /// Replaces the transform chain of the single pipeline.
    pub fn transforms(mut self, chain: crate::transform::TransformChain) -> Self {
        self.draft = self.draft.transforms(chain);
        self
    }

    /// The offset store of the single pipeline.
    pub fn offsets(mut self, store: impl OffsetStore + 'static) -> Self {
        self.draft = self.draft.offsets(store);
        self
    }

    /// Limits and policies of the single pipeline.
    pub fn settings(mut self, settings: PipelineSettings) -> Self {
        self.draft = self.draft.settings(settings);
        self
    }

    /// Commit policy of the single pipeline.
    pub fn commit_policy(mut self, policy: CommitPolicy) -> Self {
        self.draft = self.draft.commit_policy(policy);
        self
    }

    /// `errors.tolerance` of the single pipeline.
    pub fn tolerance(mut self, tolerance: ErrorTolerance) -> Self {
        self.draft = self.draft.tolerance(tolerance);
        self
    }

    /// Dead-letter destination of the single pipeline.
    pub fn dead_letter(mut self, dlq: impl DeadLetterQueue + 'static) -> Self {
        self.draft = self.draft.dead_letter(dlq);
        self
    }

    fn take_draft(&mut self) -> PipelineBuilder {
        let mut fresh = PipelineBuilder::new(&self.name);
        fresh.set_name(&self.name);
        std::mem::replace(&mut self.draft, fresh)
    }

    /// Single pipeline into a channel of batches; `start` returns the receiver.
    pub fn into_channel(mut self, capacity: usize) -> ChannelEngineBuilder {
        let (pipeline, receiver) = self.take_draft().into_channel(capacity);
        ChannelEngineBuilder {
            builder: self.pipeline(pipeline),
            receiver,
        }
    }

    /// Single pipeline into a callback with a committer.
    pub fn into_callback<F, Fut>(mut self, callback: F) -> Self
    where
        F: FnMut(Vec<Record>, Committer) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = std::result::Result<(), BoxError>> + Send + 'static,
    {
        let p = self.take_draft().into_callback(callback);
        self.pipeline(p)
    }

    /// Single pipeline into a `futures::Sink` of records.
    pub fn into_sink<S>(mut self, sink: S) -> Self
    where
        S: futures::Sink<Record> + Send + 'static,
        S::Error: Into<BoxError>,
    {
        let p = self.take_draft().into_sink(sink);
        self.pipeline(p)
    }

    /// Single pipeline into an in-process sink connector.
    pub fn into_connector(mut self, sink: impl SinkConnector + 'static) -> Self {
        let p = self.take_draft().into_connector(sink);
        self.pipeline(p)
    }

    /// Validates every pipeline and starts the engine.
    pub async fn start(self) -> Result<Engine> {
        if self.pipelines.is_empty() {
            return Err(Error::config(
                "connector.class",
                "the engine has no pipeline: set a source and a destination (into_*)",
            ));
        }
        let mut names = std::collections::HashSet::new();
        for p in &self.pipelines {
            p.validate()?;
            if !names.insert(p.name().to_owned()) {
                return Err(Error::config(
                    "name",
                    format!("two pipelines are named `{}`", p.name()),
                ));
            }
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let signals = if self.handle_signals {
            Some(spawn_signal_handler(stop_tx.clone())?)
        } else {
            None
        };
        let mut metrics = Vec::new();
        let mut runs = Vec::new();
        for p in self.pipelines {
            let m = Arc::new(PipelineMetrics::default());
            metrics.push((p.name().to_owned(), m.clone()));
            let rc = RunContext {
                engine: self.name.clone(),
                stop: stop_rx.clone(),
                shutdown_timeout: self.shutdown_timeout,
                listener: self.listener.clone(),
                metrics: m,
            };
            let span = tracing::info_span!("pipeline", engine = %self.name, pipeline = %p.name());
            runs.push(tokio::spawn(tracing::Instrument::instrument(
                p.run(rc),
                span,
            )));
        }
        let listener = self.listener.clone();
        let done = tokio::spawn(async move {
            let mut report = ShutdownReport::default();
            let mut first_error = None;
            for r in futures::future::join_all(runs).await {
                match r {
                    Ok((p, e)) => {
                        report.pipelines.push(p);
                        if first_error.is_none() {
                            first_error = e;
                        }
                    }
                    Err(join) => tracing::error!(error = %join, "pipeline panicked"),
                }
            }
            if let Some(s) = signals {
                s.abort();
            }
            listener.stopped(&report);
            (report, first_error)
        });
        Ok(Engine {
            stop: stop_tx,
            done,
            metrics,
        })
    }
}

/// An [`EngineBuilder`] whose single pipeline delivers to a channel.
pub struct ChannelEngineBuilder {
    builder: EngineBuilder,
    receiver: BatchReceiver,
}

impl std::fmt::Debug for ChannelEngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.builder.fmt(f)
    }
}

impl ChannelEngineBuilder {
    /// Starts the engine; returns it and the receiver of batches.
    pub async fn start(self) -> Result<(Engine, BatchReceiver)> {
        let engine = self.builder.start().await?;
        Ok((engine, self.receiver))
    }
}

/// Installs SIGTERM/SIGINT handlers now (so a signal arriving right after `start` is not
/// handled by the default action) and returns a task that stops the engine on either.
fn spawn_signal_handler(stop: watch::Sender<bool>) -> Result<JoinHandle<()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let install = |kind| {
            signal(kind).map_err(|e| Error::io("cannot install signal handler", "signal", e))
        };
        let mut term = install(SignalKind::terminate())?;
        let mut int = install(SignalKind::interrupt())?;
        Ok(tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            }
            stop.send_replace(true);
        }))
    }
    #[cfg(not(unix))]
    {
        Ok(tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            stop.send_replace(true);
        }))
    }
}

/// A running engine.
pub struct Engine {
    stop: watch::Sender<bool>,
    done: JoinHandle<(ShutdownReport, Option<Error>)>,
    metrics: Vec<(String, Arc<PipelineMetrics>)>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field(
                "pipelines",
                &self.metrics.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A cloneable handle that asks the engine to shut down.
#[derive(Debug, Clone)]
pub struct StopHandle(watch::Sender<bool>);

impl StopHandle {
    /// Starts a graceful shutdown.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

impl Engine {
    /// Starts building an engine.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// Current counters of every pipeline.
    pub fn metrics(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            pipelines: self.metrics.iter().map(|(n, m)| m.snapshot(n)).collect(),
        }
    }

    /// A handle to stop the engine from elsewhere.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop.clone())
    }

    /// Shuts down gracefully: stop polling, drain in-flight batches, commit, stop tasks,
    /// all within the shutdown bound. `Err` if a pipeline had failed.
    pub async fn shutdown(self) -> Result<ShutdownReport> {
        self.stop.send_replace(true);
        self.wait().await
    }

    /// Waits until the engine stops by itself (sources finished, a failure, a signal, or
    /// a [`StopHandle`]). `Err` carries the first pipeline failure.
    pub async fn wait(self) -> Result<ShutdownReport> {
        let (report, error) = self.done.await.map_err(|e| Error::fatal("engine", e))?;
        match error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Like [`Engine::wait`], returning the report even when a pipeline failed.
    pub async fn wait_report(self) -> (ShutdownReport, Option<Error>) {
        match self.done.await {
            Ok(r) => r,
            Err(e) => (ShutdownReport::default(), Some(Error::fatal("engine", e))),
        }
    }
}
