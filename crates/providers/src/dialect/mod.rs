//! Native dialects: pure translations between the OpenAI wire format the gateway speaks to clients and a provider's
//! own format, both ways, streaming included. No I/O here; the relay feeds bytes in and takes bytes out.

pub mod cohere;
pub mod gemini;
