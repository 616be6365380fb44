//! How to start one function's processes, and what they are told.

use std::path::PathBuf;
use std::time::Duration;

/// How to start one function's processes, and what they are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The function's name.
    pub name: String,
    /// The program and its arguments.
    pub command: Vec<String>,
    /// The task root, also the working directory.
    pub dir: PathBuf,
    /// The environment, in order (later entries win).
    pub env: Vec<(String, String)>,
    /// How long one invocation may take, from the moment a process takes it.
    pub timeout: Duration,
    /// `memory_size`, MB: `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` and the `REPORT` lines' `Memory Size`.
    pub memory_size: u32,
    /// Processes at most.
    pub max_concurrency: usize,
    /// `Lambda-Runtime-Invoked-Function-Arn`.
    pub arn: String,
    /// Whether code changes under `dir` replace the processes.
    pub watch: bool,
}
