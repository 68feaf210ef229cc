//! What every client of the API attaches to its calls: the session token as
//! `authorization: Bearer <token>` metadata (the gateway's `auth` module
//! reads it back).

use tonic::metadata::errors::InvalidMetadataValue;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Bearer {
    /// Fails only for a token that cannot be sent as metadata (not ASCII).
    pub fn new(token: &str) -> Result<Self, InvalidMetadataValue> {
        Ok(Self(format!("Bearer {token}").parse()?))
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// A channel whose every call carries the token.
pub type Authed = InterceptedService<Channel, Bearer>;
