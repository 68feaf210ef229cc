//! The protobuf codec of every Switchboard service: tonic's prost codec
//! with small first buffers.
//!
//! tonic allocates its encode and decode buffers eagerly, 8 KiB each per
//! call, and a subscription keeps its encode buffer for as long as it is
//! open. Nearly every message here is a few hundred bytes, so 8 KiB per idle
//! stream was a third of a stream's memory (BENCHMARKS.md, idle density).
//! Buffers start at [`FIRST_BUFFER`] and grow as a message needs; events
//! queued together are still written as one frame up to tonic's usual
//! yield threshold.
//!
//! Bytes that do not decode as the expected message are the sender's
//! mistake: INVALID_ARGUMENT with what was wrong (tonic's prost codec says
//! INTERNAL, which reads as a server fault).

use std::marker::PhantomData;

use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstEncoder};

/// Bytes allocated up front per call and direction.
pub const FIRST_BUFFER: usize = 512;
/// Encoded bytes gathered before a write is forced (tonic's default).
const YIELD_THRESHOLD: usize = 32 * 1024;

#[derive(Debug, Clone)]
pub struct SlimCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for SlimCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

fn settings() -> BufferSettings {
    BufferSettings::new(FIRST_BUFFER, YIELD_THRESHOLD)
}

impl<T, U> Codec for SlimCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = SlimDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        SlimDecoder(PhantomData)
    }
}

/// Decodes one message; malformed bytes are INVALID_ARGUMENT.
#[derive(Debug)]
pub struct SlimDecoder<U>(PhantomData<U>);

/// `SendRequest` rather than the full Rust path of the generated type.
fn message_name<U>() -> &'static str {
    let path = std::any::type_name::<U>();
    path.rsplit("::").next().unwrap_or(path)
}

impl<U> Decoder for SlimDecoder<U>
where
    U: prost::Message + Default,
{
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|err| {
            Status::invalid_argument(format!(
                "the bytes sent are not a valid {} message: {err}",
                message_name::<U>()
            ))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        settings()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short() {
        assert_eq!(message_name::<crate::pb::SendRequest>(), "SendRequest");
    }
}
