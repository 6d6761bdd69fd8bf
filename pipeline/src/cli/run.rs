//! `likes-pipeline run`: one worker of the distributed deployment (DESIGN section 11), wired in
//! [`likes_pipeline::distributed`]. Runs until SIGTERM or Ctrl-C, then commits and acks the open
//! window, closes its consumer (its partitions fail over at once) and exits 0.

use super::Failure;
use likes_pipeline::distributed::{DistributedWorker, StartError};
use likes_pipeline::PipelineConfig;
use likes_shared::shutdown;

pub(crate) async fn run(config: &PipelineConfig) -> Result<(), Failure> {
    let worker = DistributedWorker::build(config)
        .await
        .map_err(|e| match e {
            StartError::Missing(missing) => Failure::from(missing),
            other => Failure::Failed(other.into()),
        })?;
    println!(
        "likes-pipeline: worker {} consuming {} ({} partitions) as {}",
        worker.consumer_name(),
        config.pulsar.topic,
        worker.partitions(),
        config.subscription
    );
    let (trigger, stop) = shutdown::channel();
    let mut running = tokio::spawn(worker.run(stop));
    let ended = tokio::select! {
        _ = shutdown::os_signal() => {
            tracing::info!("stopping: committing the open window");
            trigger.trigger();
            (&mut running).await
        }
        // The worker ended on its own: an error, reported below.
        ended = &mut running => ended,
    };
    match ended {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(Failure::Failed(error.into())),
        Err(join) => Err(Failure::Failed(join.into())),
    }
}
