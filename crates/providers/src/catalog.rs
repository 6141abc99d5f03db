//! The free-model catalog: per platform, the free models with their limits and capabilities, compiled in.
