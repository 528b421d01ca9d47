//! Per-method call counts and latencies by gRPC status code: a tower layer in front of every
//! service (outside authentication, so refused calls count too). A unary call ends when its
//! answer's trailers pass; a stream when it ends; a call whose status travels in the headers (a
//! refusal before any handler ran) ends there.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Body, Frame, SizeHint};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use solarhub_proto::prost::Message;
use solarhub_proto::tonic::Code;
use tower::{Layer, Service};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    method: String,
    code: String,
}

fn call_histogram() -> Histogram {
    // 0.5 ms … 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The histogram, and the methods it may name (anything else is `other`).
#[derive(Debug, Clone)]
pub struct RpcMetrics {
    calls: Family<CallLabels, Histogram, fn() -> Histogram>,
    methods: Arc<HashSet<String>>,
}

impl Default for RpcMetrics {
    fn default() -> Self {
        RpcMetrics::new()
    }
}

impl RpcMetrics {
    /// Knows every method of the descriptor sets the hub serves (solarhub, health, reflection).
    pub fn new() -> RpcMetrics {
        let mut methods = HashSet::new();
        for set in [
            solarhub_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ] {
            let Ok(set) = solarhub_proto::prost_types::FileDescriptorSet::decode(set) else {
                continue;
            };
            for file in set.file {
                let package = file.package.unwrap_or_default();
                for service in file.service {
                    let service_name = service.name.unwrap_or_default();
                    for method in service.method {
                        methods.insert(format!(
                            "{package}.{service_name}/{}",
                            method.name.unwrap_or_default()
                        ));
                    }
                }
            }
        }
        RpcMetrics {
            calls: Family::new_with_constructor(call_histogram),
            methods: Arc::new(methods),
        }
    }

    fn method_label(&self, path: &str) -> String {
        let method = path.trim_start_matches('/');
        if self.methods.contains(method) {
            method.to_owned()
        } else {
            "other".to_owned()
        }
    }

    fn observe(&self, method: String, code: Code, seconds: f64) {
        self.calls
            .get_or_create(&CallLabels {
                method,
                code: format!("{code:?}"),
            })
            .observe(seconds);
    }

    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "solarhub_hub_rpc_duration",
            "gRPC calls by method and status code, and how long they took (a stream: its life)",
            Unit::Seconds,
            self.calls.clone(),
        );
    }
}

/// The layer; `None` metrics pass calls through untouched.
#[derive(Debug, Clone, Default)]
pub struct RpcLayer {
    metrics: Option<RpcMetrics>,
}

impl RpcLayer {
    pub fn new(metrics: Option<RpcMetrics>) -> RpcLayer {
        RpcLayer { metrics }
    }
}

impl<S> Layer<S> for RpcLayer {
    type Service = RpcService<S>;

    fn layer(&self, inner: S) -> RpcService<S> {
        RpcService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RpcService<S> {
    inner: S,
    metrics: Option<RpcMetrics>,
}

/// A call being measured.
#[derive(Debug)]
struct Call {
    metrics: RpcMetrics,
    method: String,
    started: Instant,
}

impl Call {
    fn end(self, code: Code) {
        self.metrics
            .observe(self.method, code, self.started.elapsed().as_secs_f64());
    }
}

fn status_in(headers: &http::HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .map(|value| Code::from_bytes(value.as_bytes()))
}

impl<S, B, RB> Service<http::Request<B>> for RpcService<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<MeteredBody<RB>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let call = self.metrics.as_ref().map(|metrics| Call {
            metrics: metrics.clone(),
            method: metrics.method_label(request.uri().path()),
            started: Instant::now(),
        });
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            let mut call = call;
            if let Some(code) = status_in(response.headers())
                && let Some(call) = call.take()
            {
                call.end(code);
            }
            Ok(response.map(|inner| MeteredBody { inner, call }))
        })
    }
}

/// The answer's body, watched for the trailers that carry the status.
#[derive(Debug)]
pub struct MeteredBody<B> {
    inner: B,
    call: Option<Call>,
}

impl<B> Drop for MeteredBody<B> {
    fn drop(&mut self) {
        // The client went away before the status was sent.
        if let Some(call) = self.call.take() {
            call.end(Code::Cancelled);
        }
    }
}

impl<B> Body for MeteredBody<B>
where
    B: Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(Some(Ok(frame))) => frame
                .trailers_ref()
                .map(|trailers| status_in(trailers).unwrap_or(Code::Ok)),
            Poll::Ready(Some(Err(_))) => Some(Code::Unknown),
            Poll::Ready(None) => Some(Code::Ok),
            Poll::Pending => None,
        };
        if let Some(code) = ended
            && let Some(call) = self.call.take()
        {
            call.end(code);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
