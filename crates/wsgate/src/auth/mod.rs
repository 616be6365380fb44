//! Authentication: SigV4 for the management API.

pub mod sigv4;
