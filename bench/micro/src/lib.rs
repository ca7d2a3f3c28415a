//! Nothing to link: the micro-benchmarks live in `benches/` (see bench/README.md).
