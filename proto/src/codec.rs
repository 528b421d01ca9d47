//! The codec of every generated client and server: prost's wire format, with two differences in
//! how the bytes are handled. A message is encoded into a buffer sized for it once (tonic's own
//! encoder starts at 8 KiB and doubles, so a year of hourly buckets, 1.9 MB, was copied about
//! eight times on its way out). A message whose bytes lie in one piece, as tonic buffers them, is
//! decoded from that slice rather than through tonic's `DecodeBuf`, whose reads prost cannot
//! inline: the history bench's client decoded its 1.9 MB answer in 6.4 ms that way and in 3.8 ms
//! from the slice (BENCHMARKS.md, issue 24).

use std::marker::PhantomData;

use prost::Message;
use prost::bytes::Buf;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic_prost::ProstDecoder;

/// `application/grpc+proto`, as `tonic_prost::ProstCodec`, with [`SizedEncoder`] and
/// [`SliceDecoder`].
#[derive(Debug, Clone)]
pub struct ProtoCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for ProtoCodec<T, U> {
    fn default() -> Self {
        ProtoCodec(PhantomData)
    }
}

impl<T, U> Codec for ProtoCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = SizedEncoder<T>;
    type Decoder = SliceDecoder<U>;

    fn encoder(&mut self) -> SizedEncoder<T> {
        SizedEncoder(PhantomData)
    }

    fn decoder(&mut self) -> SliceDecoder<U> {
        SliceDecoder(ProstDecoder::default())
    }
}

/// Reserves the message's encoded length, then encodes it.
#[derive(Debug, Clone)]
pub struct SizedEncoder<T>(PhantomData<T>);

impl<T: Message> Encoder for SizedEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.reserve(item.encoded_len());
        item.encode(buf)
            .map_err(|error| Status::internal(format!("cannot encode the message: {error}")))
    }
}

/// Decodes a message from its bytes as one slice when tonic holds them in one piece (it buffers a
/// whole message before decoding it), through prost's own decoder otherwise.
#[derive(Debug, Clone)]
pub struct SliceDecoder<U>(ProstDecoder<U>);

impl<U: Message + Default> Decoder for SliceDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        let len = buf.remaining();
        if buf.chunk().len() < len {
            return self.0.decode(buf);
        }
        let item =
            U::decode(&buf.chunk()[..len]).map_err(|error| Status::internal(error.to_string()))?;
        buf.advance(len);
        Ok(Some(item))
    }
}
