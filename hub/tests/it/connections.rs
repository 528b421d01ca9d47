//! Issue 25 point 5: connections that never start HTTP/2 are closed after the preface deadline,
//! and the hub holds at most `--max-connections` at once, closing one more as it arrives; the
//! clients that do speak are served throughout.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use solarhub_hub::grpc::connections::{Limits, PREFACE_DEADLINE};
use solarhub_hub::server::ServeOptions;
use solarhub_proto::v1::ListSystemsRequest;
use solarhub_proto::v1::system_service_client::SystemServiceClient;

use crate::common::{RunningHub, TestDb};

fn address(hub: &RunningHub) -> String {
    hub.url.trim_start_matches("http://").to_owned()
}

/// Reads until the hub closes the connection; how long that took, or `None` if it was still open
/// after `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let began = Instant::now();
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buffer = [0u8; 256];
    loop {
        match stream.read(&mut buffer) {
            // The hub's own SETTINGS frame may come first.
            Ok(n) if n > 0 => continue,
            Ok(_) => return Some(began.elapsed()),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None;
            }
            Err(_) => return Some(began.elapsed()),
        }
    }
}

fn list_systems(hub: &RunningHub) -> Result<usize, solarhub_proto::tonic::Status> {
    hub.runtime.block_on(async {
        let channel = solarhub_proto::tonic::transport::Channel::from_shared(hub.url.clone())
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(5))
            .connect_lazy();
        SystemServiceClient::new(channel)
            .list_systems(ListSystemsRequest::default())
            .await
            .map(|answer| answer.into_inner().systems.len())
    })
}

#[test]
fn silent_connections_are_closed_after_the_preface_deadline() {
    let db = TestDb::sqlite();
    let hub = RunningHub::start(&db);
    // A client that spoke HTTP/2 and then idles past the deadline keeps its connection.
    let mut idle = SystemServiceClient::new(hub.channel.clone());
    hub.runtime
        .block_on(idle.list_systems(ListSystemsRequest::default()))
        .unwrap();
    // 200 that say nothing, and 20 that stop half-way through the preface.
    let mut silent: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(address(&hub)).unwrap())
        .collect();
    for _ in 0..20 {
        let mut stream = TcpStream::connect(address(&hub)).unwrap();
        stream.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
        silent.push(stream);
    }
    let started = Instant::now();
    for stream in &mut silent {
        let waited = started.elapsed();
        let left = (PREFACE_DEADLINE + Duration::from_secs(10)).saturating_sub(waited);
        assert!(
            closed_within(stream, left).is_some(),
            "a connection that never finished its preface was still open after {:?}",
            started.elapsed()
        );
    }
    // Closed by the deadline, not at once.
    assert!(started.elapsed() >= PREFACE_DEADLINE - Duration::from_secs(1));
    // The hub still serves, the idle client included.
    assert_eq!(list_systems(&hub).unwrap(), 0);
    hub.runtime
        .block_on(idle.list_systems(ListSystemsRequest::default()))
        .expect("a client that spoke HTTP/2 lost its connection to the deadline");
}

#[test]
fn the_hub_holds_at_most_max_connections() {
    let db = TestDb::sqlite();
    let hub = RunningHub::start_with(
        &db,
        ServeOptions {
            connections: Limits {
                max: 5,
                preface_deadline: Duration::from_secs(60),
            },
            ..ServeOptions::default()
        },
    );
    let mut held: Vec<TcpStream> = (0..5)
        .map(|_| TcpStream::connect(address(&hub)).unwrap())
        .collect();
    // Let the hub accept them all before the next arrives.
    std::thread::sleep(Duration::from_millis(300));
    let mut one_more = TcpStream::connect(address(&hub)).unwrap();
    let closed = closed_within(&mut one_more, Duration::from_secs(5));
    assert!(closed.is_some(), "a sixth connection was kept open");
    assert!(list_systems(&hub).is_err(), "a call got through a full hub");
    // Room again (once the hub has seen the five close): served.
    held.clear();
    let began = Instant::now();
    let answer = loop {
        match list_systems(&hub) {
            Ok(systems) => break systems,
            Err(status) if began.elapsed() < Duration::from_secs(10) => {
                let _ = status;
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(status) => panic!("no room again after the held connections closed: {status:?}"),
        }
    };
    assert_eq!(answer, 0);
}
