//! The broker stops mid-stream and comes back on the same ports with its data (an outage,
//! `infra/dev/services stop/start pulsar`): the worker resumes on its own, without a restart,
//! and the result is exact and fully acked.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_restart_mid_stream_is_ridden_out_and_the_result_stays_exact() {
    let _broker = BROKER.write().await;
    let deployment = Deployment::new(4).await;
    let (events, model) = events(10_000, 300, 600, 3);
    let mut producer = deployment.producer().await;
    let worker = deployment.start_worker("restart").await;
    publish(&mut producer, &events[..5_000]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while worker.events() < 2_000 {
        assert!(
            Instant::now() < deadline,
            "the worker should consume before the restart"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(producer);
    likes_smoke::services("stop", "pulsar");
    tokio::time::sleep(Duration::from_secs(3)).await;
    likes_smoke::services("start", "pulsar");
    let mut producer = deployment.producer().await;
    publish(&mut producer, &events[5_000..]).await;
    deployment
        .wait_exact(&model, Duration::from_secs(120))
        .await;
    worker.stop().await;
    assert_eq!(deployment.wait_acked(Duration::from_secs(30)).await, 0);
    deployment.delete().await;
}
