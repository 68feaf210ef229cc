//! Switchboard's protobuf API.
//!
//! Generated code lives in the lint-exempt [`generated`] module; use it through
//! the short aliases [`pb`] (public `switchboard.v1`) and [`bus`] (internal
//! `switchboard.internal.v1`). Hand-written conversions live with the code
//! that needs them, never in here; what is here besides is wire-level:
//! [`codec`] (the gRPC codec), [`client`] (the token every client sends) and
//! [`status`] (status codes by their gRPC names).

pub mod client;
pub mod codec;
pub mod status;

#[allow(clippy::all, clippy::pedantic, missing_docs, rust_2018_idioms)]
pub mod generated {
    pub mod switchboard {
        pub mod v1 {
            tonic::include_proto!("switchboard.v1");
        }
        pub mod internal {
            pub mod v1 {
                tonic::include_proto!("switchboard.internal.v1");
            }
        }
    }
}

pub use generated::switchboard::internal::v1 as bus;
pub use generated::switchboard::v1 as pb;

/// Encoded `FileDescriptorSet` of every Switchboard proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/switchboard_descriptor.bin"));
