//! The demo in-process (`solarhub_hub::demo::run_demo`) with its HTTP front door, for the tests
//! that start where a newcomer starts.

use std::net::SocketAddr;
use std::time::Duration;

use solarhub_hub::demo::{DemoOptions, run_demo};
use solarhub_hub::http::listener::HttpListener;
use tokio::sync::oneshot;

use super::TestDb;

pub struct RunningDemo {
    pub runtime: tokio::runtime::Runtime,
    /// The hub's gRPC address.
    pub grpc: SocketAddr,
    /// `http://127.0.0.1:PORT` of the dashboard and HTTP/JSON API.
    pub http_url: String,
    stop: Option<oneshot::Sender<()>>,
    demo: Option<tokio::task::JoinHandle<Result<(), solarhub_hub::demo::DemoError>>>,
}

impl RunningDemo {
    /// Simulated devices polled every `poll_secs`, the collector's outbox in `outbox`.
    pub fn start(db: &TestDb, outbox: &std::path::Path, poll_secs: f64) -> RunningDemo {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (ready, address) = oneshot::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let http = HttpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let http_url = format!("http://{}", http.local_addr().unwrap());
        let demo = runtime.spawn(run_demo(
            db.migrated(),
            DemoOptions {
                listen: "127.0.0.1:0".parse().unwrap(),
                simulate: "127.0.0.1:0".parse().unwrap(),
                outbox_dir: outbox.to_owned(),
                poll_secs,
                metrics_listen: None,
                http: Some(http),
                mqtt: None,
            },
            Some(ready),
            async {
                let _ = stopped.await;
            },
        ));
        let grpc = runtime.block_on(address).expect("the demo serves");
        RunningDemo {
            runtime,
            grpc,
            http_url,
            stop: Some(stop),
            demo: Some(demo),
        }
    }

    /// Stops it (collector first) and waits up to 15 s for a clean stop.
    pub fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        let demo = self.demo.take().unwrap();
        self.runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(15), demo).await })
            .expect("the demo stops within 15 s")
            .unwrap()
            .expect("and stops cleanly");
    }
}
