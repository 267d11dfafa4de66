//! The x402 reason codes faregate sends in `invalidReason` and
//! `errorReason`, and in a 402's `error` when a payment is refused.
//!
//! Each is the string of the official Python SDK (`x402` 2.25.0,
//! `x402/mechanisms/evm/constants.py`) where it has one, else the spec's
//! (§9 of the x402 v2 specification), so clients and dashboards that know
//! the reference implementation read ours the same way. Clients treat them
//! as opaque: they display them, they do not branch on them.

/// The scheme's payload is not a well-formed EIP-3009 authorization (spec).
pub const INVALID_PAYLOAD: &str = "invalid_payload";

/// `accepted.scheme` is not `exact` (Python `ERR_UNSUPPORTED_SCHEME`).
pub const UNSUPPORTED_SCHEME: &str = "unsupported_scheme";

/// `accepted.network` is not the requirements' network (Python
/// `ERR_NETWORK_MISMATCH`).
pub const NETWORK_MISMATCH: &str = "network_mismatch";

/// The network is not `eip155:<chain id>` (Python
/// `ERR_FAILED_TO_GET_NETWORK_CONFIG`).
pub const FAILED_TO_GET_NETWORK_CONFIG: &str = "invalid_exact_evm_failed_to_get_network_config";

/// The requirements' `extra` lacks the token's EIP-712 `name` or `version`
/// (Python `ERR_MISSING_EIP712_DOMAIN`).
pub const MISSING_EIP712_DOMAIN: &str = "missing_eip712_domain";

/// `authorization.to` is not `payTo` (Python `ERR_RECIPIENT_MISMATCH`).
pub const RECIPIENT_MISMATCH: &str = "invalid_exact_evm_payload_recipient_mismatch";

/// `authorization.value` is not exactly `amount` (Python
/// `ERR_AUTHORIZATION_VALUE_MISMATCH`).
pub const VALUE_MISMATCH: &str = "invalid_exact_evm_payload_authorization_value_mismatch";

/// `validBefore` has passed, or is less than 6 s away (Python
/// `ERR_VALID_BEFORE_EXPIRED`).
pub const VALID_BEFORE: &str = "invalid_exact_evm_payload_authorization_valid_before";

/// `validAfter` is still in the future (Python `ERR_VALID_AFTER_FUTURE`).
pub const VALID_AFTER: &str = "invalid_exact_evm_payload_authorization_valid_after";

/// The signature does not recover to `from` (Python `ERR_INVALID_SIGNATURE`).
pub const SIGNATURE: &str = "invalid_exact_evm_payload_signature";

/// The authorization's nonce was already used, on chain or in the gateway's
/// own cache (Python `ERR_NONCE_ALREADY_USED`).
pub const NONCE_USED: &str = "invalid_exact_evm_nonce_already_used";

/// The payer's token balance is below `value` (Python
/// `ERR_INSUFFICIENT_BALANCE`).
pub const INSUFFICIENT_BALANCE: &str = "invalid_exact_evm_insufficient_balance";

/// The payer cannot pay (spec).
pub const INSUFFICIENT_FUNDS: &str = "insufficient_funds";

/// `x402Version` is not 2 (spec).
pub const INVALID_X402_VERSION: &str = "invalid_x402_version";

/// The requirements are unusable: `accepted` is none of the offers this
/// server made, or the requirements themselves are malformed (spec). The
/// Python server says [`NO_MATCHING_REQUIREMENTS_MESSAGE`] in the 402's
/// `error` instead: it has no code for this case.
pub const NO_MATCHING_REQUIREMENTS: &str = "invalid_payment_requirements";

/// The words the Python server puts in a 402's `error` when `accepted`
/// matches no offer (`x402_http_server_base.py`).
pub const NO_MATCHING_REQUIREMENTS_MESSAGE: &str = "No matching payment requirements";

/// The transfer was sent but its receipt is not known yet (Python
/// `ERR_SETTLEMENT_PENDING`): not a success, and retried once by clients.
pub const SETTLEMENT_PENDING: &str = "settlement_pending";

/// The transfer reverted or was not mined (Python `ERR_TRANSACTION_FAILED`).
pub const TRANSACTION_FAILED: &str = "transaction_failed";

/// The transaction is in a state settlement cannot use (spec).
pub const INVALID_TRANSACTION_STATE: &str = "invalid_transaction_state";

/// Settlement failed for a reason of our own (spec; the Python middleware's
/// answer to an exception while settling).
pub const UNEXPECTED_SETTLE_ERROR: &str = "unexpected_settle_error";

/// Verification failed for a reason of our own (spec).
pub const UNEXPECTED_VERIFY_ERROR: &str = "unexpected_verify_error";
