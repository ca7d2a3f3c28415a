//! One module per protocol endpoint.

pub mod authorize;
pub mod discovery;
pub mod end_session;
pub mod introspect;
pub mod jwks;
pub mod revoke;
pub mod token;
pub mod userinfo;
