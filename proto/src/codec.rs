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

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

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
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(settings())
    }
}
