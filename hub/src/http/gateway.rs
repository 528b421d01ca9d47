//! In-process gRPC calls for the HTTP routes. A route's JSON request becomes the method's protobuf
//! request (the proto3 JSON mapping, by prost-reflect from the protos' own descriptors), and goes
//! through the very tower stack a gRPC client's call goes through: metrics, authentication, roles
//! and the audit trail, then the service. The answer comes back as a message the route turns into
//! JSON or CSV. So an HTTP route has no rule of its own: its gRPC twin answers it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::str::FromStr;

use http::uri::PathAndQuery;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, MethodDescriptor};
use solarhub_proto::tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use solarhub_proto::tonic::transport::server::TcpConnectInfo;
use solarhub_proto::tonic::{self, Status, Streaming};
use tower::util::BoxCloneSyncService;

/// The gRPC server's stack as one service (metrics and auth layers over the routes).
pub type GrpcStack = BoxCloneSyncService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    Infallible,
>;

/// Who is calling, as the gRPC stack sees a caller: the credentials it sends and where from.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// `Bearer TOKEN`, from the request or from its session.
    pub authorization: Option<http::HeaderValue>,
    pub peer: Option<SocketAddr>,
    pub local: Option<SocketAddr>,
}

#[derive(Clone)]
pub struct Gateway {
    stack: GrpcStack,
}

impl Gateway {
    pub fn new(stack: GrpcStack) -> Gateway {
        Gateway { stack }
    }

    /// `service/Method` of package `solarhub.v1`, e.g. `LiveService/GetSystemNow`.
    pub fn method(&self, name: &str) -> Option<MethodDescriptor> {
        method_in(crate::descriptors::pool(), name)
    }

    /// The protos' descriptors.
    pub fn pool(&self) -> &'static DescriptorPool {
        crate::descriptors::pool()
    }

    fn request(
        method: &MethodDescriptor,
        message: DynamicMessage,
        caller: &Caller,
    ) -> (tonic::Request<DynamicMessage>, PathAndQuery) {
        let mut request = tonic::Request::new(message);
        if let Some(authorization) = &caller.authorization
            && let Ok(value) =
                tonic::metadata::AsciiMetadataValue::try_from(authorization.as_bytes())
        {
            request.metadata_mut().insert("authorization", value);
        }
        request.extensions_mut().insert(TcpConnectInfo {
            local_addr: caller.local,
            remote_addr: caller.peer,
        });
        let path =
            PathAndQuery::from_str(&path_of(method)).expect("a method path is a valid URI path");
        (request, path)
    }

    /// A client of the stack, ready for a call.
    async fn client(&self) -> Result<tonic::client::Grpc<GrpcStack>, Status> {
        let mut grpc = tonic::client::Grpc::new(self.stack.clone());
        grpc.ready()
            .await
            .map_err(|error| Status::unavailable(error.to_string()))?;
        Ok(grpc)
    }

    /// One unary call.
    pub async fn unary(
        &self,
        method: &MethodDescriptor,
        message: DynamicMessage,
        caller: &Caller,
    ) -> Result<DynamicMessage, Status> {
        let (request, path) = Self::request(method, message, caller);
        let codec = DynamicCodec(method.output());
        Ok(self
            .client()
            .await?
            .unary(request, path, codec)
            .await?
            .into_inner())
    }

    /// A server-streaming call (the live watch).
    pub async fn server_stream(
        &self,
        method: &MethodDescriptor,
        message: DynamicMessage,
        caller: &Caller,
    ) -> Result<Streaming<DynamicMessage>, Status> {
        let (request, path) = Self::request(method, message, caller);
        let codec = DynamicCodec(method.output());
        Ok(self
            .client()
            .await?
            .server_streaming(request, path, codec)
            .await?
            .into_inner())
    }
}

/// The HTTP/2 path of a gRPC method (`/solarhub.v1.LiveService/GetSystemNow`), as the auth
/// layer and the audit trail name it.
pub fn path_of(method: &MethodDescriptor) -> String {
    format!("/{}/{}", method.parent_service().full_name(), method.name())
}

/// Method `service/Method` of package `solarhub.v1` in `pool` (a route's `rpc`).
pub fn method_in(pool: &DescriptorPool, name: &str) -> Option<MethodDescriptor> {
    let (service, method) = name.split_once('/')?;
    pool.get_service_by_name(&format!("solarhub.v1.{service}"))?
        .methods()
        .find(|m| m.name() == method)
}

/// Protobuf encoding of dynamic messages, answers decoded as the method's output type (any
/// tonic client can use it: the tests call the network API with it).
pub struct DynamicCodec(MessageDescriptor);

impl DynamicCodec {
    /// A codec for a method answering `output`.
    pub fn new(output: MessageDescriptor) -> DynamicCodec {
        DynamicCodec(output)
    }
}

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynamicEncoder;
    type Decoder = DynamicDecoder;

    fn encoder(&mut self) -> DynamicEncoder {
        DynamicEncoder
    }

    fn decoder(&mut self) -> DynamicDecoder {
        DynamicDecoder(self.0.clone())
    }
}

pub struct DynamicEncoder;

impl Encoder for DynamicEncoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn encode(&mut self, item: DynamicMessage, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|error| Status::internal(format!("encoding the request: {error}")))
    }
}

pub struct DynamicDecoder(MessageDescriptor);

impl Decoder for DynamicDecoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<DynamicMessage>, Status> {
        let mut message = DynamicMessage::new(self.0.clone());
        message
            .merge(src)
            .map_err(|error| Status::internal(format!("decoding the answer: {error}")))?;
        Ok(Some(message))
    }
}
