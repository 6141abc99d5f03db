//! OpenAI wire format pieces the gateway needs to look at: the few request fields it reads (borrowed, never a full
//! parse), OpenAI-style error bodies, and an incremental Server-Sent-Events splitter with the chunk inspection used by
//! the first-token watchdog. No I/O lives here.

pub mod error;
pub mod request;
pub mod sse;
pub mod stream_usage;

pub use error::{ApiError, ErrorType};
pub use request::{ChatRequestView, EmbeddingsRequestView, Needs, RequestFieldError};
pub use sse::{inspect_chunk, ChunkSignal, SseSplitter, Usage};
