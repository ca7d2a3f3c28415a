//! One module per protocol endpoint.

pub mod authorize;
pub mod discovery;
pub mod jwks;
pub mod token;
pub mod userinfo;
