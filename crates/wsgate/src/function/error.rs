//! Why an invocation of a local function produced no result.

/// Why an invocation produced no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FunctionError {
    /// The handler raised; the runtime posted to `/error`.
    #[error("{error_type}: {message}")]
    Handler {
        /// `errorType` (or the error-type header).
        error_type: String,
        /// `errorMessage`, or the raw error body.
        message: String,
    },
    /// The handler could not be loaded (`/runtime/init/error`).
    #[error("the function failed to start: {0}")]
    Init(String),
    /// The invocation took longer than the function's timeout; its process was killed.
    #[error("task timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The process exited during the invocation.
    #[error("the function's process exited: {0}")]
    Crashed(String),
    /// The process could not be started.
    #[error("cannot start {command}: {error}")]
    Spawn {
        /// The program.
        command: String,
        /// Why.
        error: String,
    },
}
