//! A real local EVM chain for tests: the testkit's anvil harness (anvil
//! named by `FAREGATE_ANVIL`, the EIP-3009 test token moved to Base
//! Sepolia's USDC address), shared with faregate's end-to-end tests.

// Not every test binary that includes `support` runs a chain.
#[allow(unused_imports)]
pub(crate) use faregate_testkit::anvil::{Anvil, KEYS, account, binary, key};
