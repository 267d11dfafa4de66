//! Tests across the whole module: one subscription's life, and random
//! histories.

mod random;
mod walk;
