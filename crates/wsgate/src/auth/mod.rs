//! Authentication: the `$connect` authorizers (REQUEST, called over HTTP or as a local function,
//! and JWT, checked here) and SigV4 for the management API (its canonical request, the check, the
//! signing keys kept).

mod attempt;
pub mod authorizer;
mod canonical_request;
pub mod jwt;
pub mod replay;
pub mod request;
pub mod sigv4;
pub mod token;
